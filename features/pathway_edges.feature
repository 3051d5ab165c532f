@edges
Feature: The edges of the pathway
  What the pathway does not cover is said plainly, next to what it affects; numbers are computed as
  a clinician computes them; an interview-only DN4 is scored on its own scale; and an unrecorded
  pregnancy status is named wherever it changes advice (CLINICAL.md end of section 3, rule set 1.2).

  # ---------------------------------------------------------------- out of scope

  Scenario Outline: A 60-year-old with recalcitrant neuropathic pain and <finding> is told its treatment is outside this rule set, next to the escalations it affects
    Given a 60-year-old female with 40 weeks of forefoot pain
    And neuropathic features burning, tingling, numbness, electric_shocks
    And the patient is not_pregnant
    And footwear_modification tried for 10 weeks with response none
    And metatarsal_pad tried for 10 weeks with response none
    And activity_modification tried for 10 weeks with response none
    And the examination finds <finding>
    When the patient is triaged
    Then a notice "<finding>" names <affected> and says "<text>"
    And the details of pulsed_radiofrequency mention "<text>"
    And rule <rule> fires
    And pulsed_radiofrequency is recommended as interventional

    Examples:
      | finding                    | affected             | text                                                  | rule                   |
      | interdigital_neuroma_signs | low_dose_naltrexone  | interdigital (Morton's) neuroma: its treatment is outside this rule set | OUT-OF-SCOPE-NEUROMA |
      | rigid_toe_deformity        | tendon_transfer      | a rigid toe deformity: its surgical treatment is outside this rule set | OUT-OF-SCOPE-RIGID-TOE |

  Scenario: A 60-year-old with recalcitrant neuropathic pain and no neuroma or rigid deformity gets no out-of-scope notice
    Given a 60-year-old female with 40 weeks of forefoot pain
    And neuropathic features burning, tingling, numbness, electric_shocks
    And footwear_modification tried for 10 weeks with response none
    And metatarsal_pad tried for 10 weeks with response none
    And activity_modification tried for 10 weeks with response none
    And the examination finds flexible_toe_deformity
    When the patient is triaged
    Then no notice is given
    And rule OUT-OF-SCOPE-NEUROMA does not fire
    And rule OUT-OF-SCOPE-RIGID-TOE does not fire

  # ---------------------------------------------------------------- BMI rounded as a clinician rounds

  @first_line @boundary
  Scenario Outline: A 45-year-old man of <weight> kg at <height> cm has a BMI of <bmi> (rounded half up) and <decision>
    Given a 45-year-old male with 10 weeks of forefoot pain
    And weight <weight> kg and height <height> cm
    When the patient is triaged
    Then the trace explains "= <bmi> (rounded half up to one decimal)"
    And rule FL-WEIGHT <fires>

    Examples:
      | weight | height | bmi  | decision                       | fires         |
      | 99.76  | 200    | 24.9 | is not advised to lose weight  | does not fire |
      | 99.8   | 200    | 25.0 | is advised weight management   | fires         |
      | 100    | 200    | 25.0 | is advised weight management   | fires         |

  # ---------------------------------------------------------------- DN4 by interview only

  @findings @boundary
  Scenario Outline: A 54-year-old with persistent pain whose DN4 was done by interview only, <score>/7, <decision> (interview cutoff 4/7)
    Given a 54-year-old female with 16 weeks of forefoot pain
    And neuropathic features <features>
    And the DN4 was done by interview only
    And metatarsal_pad tried for 8 weeks with response none
    And the patient is not_pregnant
    When the patient is triaged
    Then the trace explains "DN4 interview only (no examination items): <score>/7"
    And rule DN4-SCORE-INTERVIEW fires
    And rule DN4-SCORE does not fire
    And rule DN4-PHENOTYPE-INTERVIEW <phenotype>
    And low_dose_naltrexone <verdict>

    Examples:
      | score | features                                  | decision                        | phenotype     | verdict                                                                                 |
      | 3     | burning, tingling, numbness               | is told LDN is not indicated    | does not fire | is not recommended as not_indicated because "DN4 (interview only) 3/7 is below the screening cutoff of 4" |
      | 4     | burning, tingling, numbness, itching      | may be offered LDN              | fires         | is recommended as adjunct                                                               |

  @findings
  Scenario: A 54-year-old whose DN4 was done with the examination, 4/10, is scored out of 10 against 4
    Given a 54-year-old female with 16 weeks of forefoot pain
    And neuropathic features burning, tingling, numbness, brush_allodynia
    And metatarsal_pad tried for 8 weeks with response none
    When the patient is triaged
    Then the trace explains "DN4 4/10"
    And rule DN4-SCORE fires
    And rule DN4-PHENOTYPE fires
    And rule DN4-SCORE-INTERVIEW does not fire
    And rule DN4-PHENOTYPE-INTERVIEW does not fire
    And rule LDN-NOT-INDICATED-INTERVIEW does not fire

  @findings
  Scenario: A 54-year-old whose interview-only DN4 is 2/7 is told, with the version scored, that LDN is not indicated
    Given a 54-year-old female with 16 weeks of forefoot pain
    And neuropathic features burning, tingling
    And the DN4 was done by interview only
    And metatarsal_pad tried for 8 weeks with response none
    When the patient is triaged
    Then low_dose_naltrexone is not recommended as not_indicated because "DN4 (interview only) 2/7"
    And rule LDN-NOT-INDICATED-INTERVIEW fires
    And rule LDN-NOT-INDICATED does not fire

  # ---------------------------------------------------------------- pregnancy not recorded

  @first_line
  Scenario: A 30-year-old woman with a BMI of 31.1 and no pregnancy status recorded is advised weight management with the unknown named beside it
    Given a 30-year-old female with 10 weeks of forefoot pain
    And weight 90 kg and height 170 cm
    When the patient is triaged
    Then weight_management is recommended as first_line
    And the details of weight_management mention "pregnancy status is not recorded: confirm it before weight-loss advice"
    And the unknown pregnancy affects weight_management
    And rule PREGNANCY-POSSIBLE fires
    And rule FL-WEIGHT-PREGNANCY-UNKNOWN fires

  @first_line
  Scenario: A 30-year-old woman with a BMI of 31.1 who is not pregnant is advised weight management with no pregnancy unknown
    Given a 30-year-old female with 10 weeks of forefoot pain
    And weight 90 kg and height 170 cm
    And the patient is not_pregnant
    When the patient is triaged
    Then weight_management is recommended as first_line
    And pregnancy is not listed as unknown
    And rule PREGNANCY-POSSIBLE does not fire
    And rule FL-WEIGHT-PREGNANCY-UNKNOWN does not fire

  @first_line
  Scenario: A 30-year-old woman with a BMI of 22.5 and no pregnancy status recorded has no weight advice for pregnancy to qualify
    Given a 30-year-old female with 10 weeks of forefoot pain
    And weight 65 kg and height 170 cm
    When the patient is triaged
    Then rule PREGNANCY-POSSIBLE fires
    And rule FL-WEIGHT-PREGNANCY-UNKNOWN does not fire
    And pregnancy is not listed as unknown

  @ldn
  Scenario: A 30-year-old woman eligible for LDN, with a BMI of 31.1 and no pregnancy status, has the one pregnancy unknown name both LDN and weight management
    Given a 30-year-old female with 16 weeks of forefoot pain
    And weight 90 kg and height 170 cm
    And neuropathic features burning, tingling, numbness, electric_shocks
    And metatarsal_pad tried for 8 weeks with response none
    When the patient is triaged
    Then the unknown pregnancy affects weight_management
    And the unknown pregnancy affects low_dose_naltrexone
    And the details of low_dose_naltrexone mention "pregnancy status is not recorded"
