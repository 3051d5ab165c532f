"""features/pathway_edges.feature: what the pathway does not cover, clinical rounding, the
interview-only DN4 and the pregnancy unknown (rule set 1.2), run by pytest-bdd."""

from pytest_bdd import scenarios

scenarios("pathway_edges.feature")
