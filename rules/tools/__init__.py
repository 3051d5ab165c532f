"""Small maintenance tools of the rule set (run with `python -m rules.tools.<name>`)."""
