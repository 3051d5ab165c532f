@findings
Feature: Derived findings
  The rule set derives named findings from the patient's facts, each by its own rule and each
  recorded in the trace (CLINICAL.md section 3): BMI, the DN4 score and the neuropathic phenotype,
  an adequate conservative trial and what became of each first-line modality, failed conservative
  care, persistent and recalcitrant pain, and opioid exposure from free-text medication names.
  The thresholds (6-week trial, 12 weeks, DN4 4, 24 weeks or 3 modalities, adult from 18) are
  project parameters kept in rules/parameters.toml, not evidence.

  # ---------------------------------------------------------------- BMI

  Scenario: A 45-year-old weighing 82 kg at 165 cm has a BMI of 30.1 derived from weight and height
    Given a 45-year-old female with 4 weeks of forefoot pain
    And weight 82 kg and height 165 cm
    When the patient is triaged
    Then rule BMI-DERIVE fires
    And the finding bmi is concluded
    And the trace explains "BMI = 82 kg / (1.65 m)² = 30.1"
    And rule BMI-UNKNOWN does not fire
    And bmi is not listed as unknown

  Scenario: A 45-year-old with no weight or height recorded has BMI listed as unknown and weight management not evaluated
    Given a 45-year-old female with 4 weeks of forefoot pain
    When the patient is triaged
    Then rule BMI-UNKNOWN fires
    And rule BMI-DERIVE does not fire
    And rule BMI-CHILD does not fire
    And the finding bmi is not concluded
    And bmi is listed as unknown
    And weight_management is not mentioned

  @boundary
  Scenario Outline: A <age>-year-old weighing 100 kg at 180 cm <is_or_not> judged by adult BMI cut-offs (adult from 18)
    Given a <age>-year-old male with 4 weeks of forefoot pain
    And weight 100 kg and height 180 cm
    When the patient is triaged
    Then rule BMI-DERIVE <derive>
    And rule BMI-CHILD <child>
    And rule BMI-UNKNOWN does not fire
    And weight_management <weight>

    Examples:
      | age | is_or_not | derive        | child         | weight               |
      | 17  | is not    | does not fire | fires         | is not mentioned     |
      | 18  | is        | fires         | does not fire | is recommended       |
      | 19  | is        | fires         | does not fire | is recommended       |

  Scenario: A 12-year-old without weight or height is told adult BMI cut-offs do not apply, not that measurements are missing
    Given a 12-year-old female with 4 weeks of forefoot pain
    When the patient is triaged
    Then rule BMI-CHILD fires
    And rule BMI-UNKNOWN does not fire
    And bmi is listed as unknown

  # ---------------------------------------------------------------- DN4 and the neuropathic phenotype

  @boundary
  Scenario Outline: A 50-year-old with <score> of the 10 DN4 items <screens> for a neuropathic component (cutoff 4)
    Given a 50-year-old female with 8 weeks of forefoot pain
    And neuropathic features <items>
    When the patient is triaged
    Then rule DN4-SCORE fires
    And the trace explains "DN4 <score>/10"
    And rule DN4-PHENOTYPE <phenotype>
    And the finding neuropathic_phenotype <concluded>

    Examples:
      | score | items                                                       | screens           | phenotype     | concluded        |
      | 3     | burning, tingling, numbness                                 | does not screen   | does not fire | is not concluded |
      | 4     | burning, tingling, numbness, electric_shocks                | screens positive  | fires         | is concluded     |
      | 5     | burning, tingling, numbness, electric_shocks, painful_cold  | screens positive  | fires         | is concluded     |

  Scenario: A 50-year-old with no DN4 items listed and the DN4 not assessed has the DN4 listed as unknown, not silently 0/10
    Given a 50-year-old female with 8 weeks of forefoot pain
    When the patient is triaged
    Then rule DN4-UNKNOWN fires
    And rule DN4-SCORE does not fire
    And dn4 is listed as unknown
    And the unknown dn4 affects low_dose_naltrexone
    And the finding dn4_unknown is concluded
    And the finding dn4 is not concluded
    And rule DN4-PHENOTYPE does not fire

  Scenario: A 50-year-old whose DN4 was assessed and found 0/10 has a known DN4 score
    Given a 50-year-old female with 8 weeks of forefoot pain
    And the DN4 was assessed
    When the patient is triaged
    Then rule DN4-SCORE fires
    And rule DN4-UNKNOWN does not fire
    And the trace explains "DN4 0/10"
    And dn4 is not listed as unknown
    And the finding neuropathic_phenotype is not concluded

  # ---------------------------------------------------------------- conservative trials

  @boundary
  Scenario Outline: A metatarsal pad worn for <weeks> weeks without benefit <is_or_not> an adequate conservative trial (6 weeks)
    Given a 50-year-old female with 20 weeks of forefoot pain
    And metatarsal_pad tried for <weeks> weeks with response none
    When the patient is triaged
    Then rule TRIAL-ADEQUATE <adequate>
    And the finding adequate_trial <concluded>
    And the trace explains "metatarsal_pad: <weeks> weeks, response none -> <status>"

    Examples:
      | weeks | is_or_not | adequate      | concluded        | status     |
      | 5     | is not    | does not fire | is not concluded | short      |
      | 6     | is        | fires         | is concluded     | no_benefit |
      | 7     | is        | fires         | is concluded     | no_benefit |

  Scenario Outline: A first-line modality tried for <weeks> weeks with response <response> is classified as <status>
    Given a 50-year-old female with 20 weeks of forefoot pain
    And metatarsal_pad tried for <weeks> weeks with response <response>
    When the patient is triaged
    Then rule TRIAL-STATUS fires
    And the finding trial_status is concluded
    And the trace explains "metatarsal_pad: <weeks> weeks, response <response> -> <status>"

    Examples:
      | weeks | response      | status        |
      | 8     | none          | no_benefit    |
      | 8     | partial       | partial       |
      | 8     | resolved      | helped        |
      | 2     | worsened      | worsened      |
      | 4     | not_tolerated | not_tolerated |
      | 3     | none          | short         |

  Scenario: A 40-year-old who has tried nothing yet has no conservative trial to classify
    Given a 40-year-old male with 20 weeks of forefoot pain
    When the patient is triaged
    Then rule TRIAL-STATUS does not fire
    And rule TRIAL-ADEQUATE does not fire
    And rule PERSISTENT does not fire
    And rule CONSERVATIVE-FAILED fires
    And the trace explains "adequate first-line trials without resolution: 0 (none), 0 weeks in total"

  Scenario: A 40-year-old who tried only LDN for 12 weeks has had no conservative trial, so the pain is not persistent
    Given a 40-year-old male with 20 weeks of forefoot pain
    And low_dose_naltrexone tried for 12 weeks with response none
    When the patient is triaged
    Then rule TRIAL-STATUS does not fire
    And rule TRIAL-ADEQUATE does not fire
    And rule PERSISTENT does not fire

  Scenario: Failed conservative care adds up 8 weeks of pads and 12 of footwear, but not resolved insoles or a 4-week stretch
    Given a 50-year-old female with 20 weeks of forefoot pain
    And metatarsal_pad tried for 8 weeks with response none
    And footwear_modification tried for 12 weeks with response partial
    And insoles tried for 10 weeks with response resolved
    And calf_stretching tried for 4 weeks with response none
    When the patient is triaged
    Then rule CONSERVATIVE-FAILED fires
    And the trace explains "adequate first-line trials without resolution: 2 (footwear_modification, metatarsal_pad), 20 weeks in total"

  # ---------------------------------------------------------------- persistent pain

  @boundary
  Scenario Outline: <weeks> weeks of forefoot pain after 8 weeks of pads without benefit <is_or_not> persistent (12 weeks)
    Given a 50-year-old female with <weeks> weeks of forefoot pain
    And metatarsal_pad tried for 8 weeks with response none
    When the patient is triaged
    Then rule PERSISTENT <persistent>
    And the finding persistent_pain <concluded>

    Examples:
      | weeks | is_or_not | persistent    | concluded        |
      | 11    | is not    | does not fire | is not concluded |
      | 12    | is        | fires         | is concluded     |
      | 13    | is        | fires         | is concluded     |

  Scenario Outline: 16 weeks of pain after 8 weeks of pads with response <response> <is_or_not> persistent
    Given a 50-year-old female with 16 weeks of forefoot pain
    And metatarsal_pad tried for 8 weeks with response <response>
    When the patient is triaged
    Then rule PERSISTENT <persistent>

    Examples:
      | response      | is_or_not | persistent    |
      | none          | is        | fires         |
      | partial       | is        | fires         |
      | worsened      | is        | fires         |
      | resolved      | is not    | does not fire |
      | not_tolerated | is not    | does not fire |

  # ---------------------------------------------------------------- recalcitrant pain

  @boundary
  Scenario Outline: Persistent pain after 12 weeks of pads and <footwear> weeks of footwear without benefit (<total> weeks) <is_or_not> recalcitrant (24 weeks)
    Given a 58-year-old male with 30 weeks of forefoot pain
    And metatarsal_pad tried for 12 weeks with response none
    And footwear_modification tried for <footwear> weeks with response none
    When the patient is triaged
    Then rule RECALCITRANT-WEEKS <weeks_rule>
    And rule RECALCITRANT-MODALITIES does not fire
    And the finding recalcitrant_pain <concluded>

    Examples:
      | footwear | total | is_or_not | weeks_rule    | concluded        |
      | 11       | 23    | is not    | does not fire | is not concluded |
      | 12       | 24    | is        | fires         | is concluded     |
      | 13       | 25    | is        | fires         | is concluded     |

  @boundary
  Scenario Outline: Persistent pain after <n> failed adequate first-line modalities of 6 weeks each (<total> weeks) <is_or_not> recalcitrant (3 modalities)
    Given a 58-year-old male with 30 weeks of forefoot pain
    And metatarsal_pad tried for 6 weeks with response none
    And footwear_modification tried for 6 weeks with response partial
    And insoles tried for 6 weeks with response <insoles>
    And calf_stretching tried for 6 weeks with response <stretching>
    When the patient is triaged
    Then rule RECALCITRANT-MODALITIES <modalities_rule>
    And rule RECALCITRANT-WEEKS <weeks_rule>

    Examples:
      | n | total | insoles       | stretching | is_or_not | modalities_rule | weeks_rule    |
      | 2 | 12    | resolved      | resolved   | is not    | does not fire   | does not fire |
      | 2 | 12    | not_tolerated | resolved   | is not    | does not fire   | does not fire |
      | 3 | 18    | none          | resolved   | is        | fires           | does not fire |
      | 4 | 24    | none          | worsened   | is        | fires           | fires         |

  Scenario: A 30-year-old with 10 weeks of pain after three 6-week trials at once is not recalcitrant, because the pain is not yet persistent
    Given a 30-year-old female with 10 weeks of forefoot pain
    And metatarsal_pad tried for 6 weeks with response none
    And footwear_modification tried for 6 weeks with response none
    And insoles tried for 6 weeks with response none
    When the patient is triaged
    Then rule PERSISTENT does not fire
    And rule RECALCITRANT-MODALITIES does not fire
    And the finding recalcitrant_pain is not concluded

  # ---------------------------------------------------------------- opioid exposure and unrecognised medications

  Scenario: A 60-year-old taking "Tramadol 50 mg" has opioid exposure derived from the medication list
    Given a 60-year-old male with 16 weeks of forefoot pain
    And medication "Tramadol 50 mg"
    When the patient is triaged
    Then rule OPIOID-MEDICATION fires
    And the finding opioid_exposure is concluded
    And the trace explains "medication 'Tramadol 50 mg' contains tramadol: an opioid"

  Scenario: A 60-year-old with opioid use disorder has opioid exposure even with no opioid on the medication list
    Given a 60-year-old male with 16 weeks of forefoot pain
    And comorbidity opioid_use_disorder
    When the patient is triaged
    Then rule OPIOID-USE-DISORDER fires
    And rule OPIOID-MEDICATION does not fire
    And the finding opioid_exposure is concluded

  Scenario: A 60-year-old taking sertraline, metformin and a naloxone rescue kit has no opioid exposure and no unchecked medication
    Given a 60-year-old male with 16 weeks of forefoot pain
    And medication "sertraline"
    And medication "Metformin 500 mg"
    And medication "naloxone nasal spray"
    When the patient is triaged
    Then rule OPIOID-MEDICATION does not fire
    And rule OPIOID-USE-DISORDER does not fire
    And rule MEDICATION-UNRECOGNISED does not fire
    And the finding opioid_exposure is not concluded

  Scenario: A 60-year-old taking "Flurbex 20 mg", a name the drug vocabulary does not know, has it listed as unknown rather than assumed safe
    Given a 60-year-old male with 16 weeks of forefoot pain
    And medication "Flurbex 20 mg"
    When the patient is triaged
    Then rule MEDICATION-UNRECOGNISED fires
    And medication:flurbex 20 mg is listed as unknown
    And rule OPIOID-MEDICATION does not fire
