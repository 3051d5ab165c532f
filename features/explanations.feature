@explanations
Feature: Explanations a clinician can check
  For each recommendation and each not-recommended entry, the explanation gives the chain from
  the patient's own facts through the derived findings to the conclusion: every step names its
  rule, the values and thresholds it compared, and its sources with their grades. What the
  pathway needed but was not given is shown as unknown, with what it blocks, never as negative.

  @ldn
  Scenario: A 54-year-old with 16 weeks of burning forefoot pain after an 8-week pad trial: the explanation for LDN names the 8-week pad trial and the DN4 score
    Given the example patient "neuropathic-persistent"
    When the triage is explained
    Then the explanation for low_dose_naltrexone goes through rule DN4-PHENOTYPE
    And the explanation for low_dose_naltrexone says "DN4 4/10 ≥ 4"
    And the explanation for low_dose_naltrexone goes through rule PERSISTENT
    And the explanation for low_dose_naltrexone says "pain 16 weeks ≥ 12 despite metatarsal_pad for 8 weeks (response none)"
    And the explanation for low_dose_naltrexone rests on the patient fact treatment:metatarsal_pad
    And the explanation for low_dose_naltrexone rests on the patient fact pain

  @ldn
  Scenario: A 54-year-old offered LDN as an adjunct: the explanation shows no opioid exposure and no liver contraindication, SORT C, citing the fibromyalgia trial
    Given the example patient "neuropathic-persistent"
    When the triage is explained
    Then the explanation for low_dose_naltrexone checked "opioid_exposure" absent
    And the explanation for low_dose_naltrexone checked "comorbidity(code in (acute_hepatitis, liver_failure))" absent
    And the explanation for low_dose_naltrexone is graded SORT C
    And the explanation for low_dose_naltrexone cites younger-2013
    And the explanation for low_dose_naltrexone says "women with fibromyalgia"

  @ldn @contraindications
  Scenario: A 61-year-old taking tramadol: the explanation names tramadol as the opioid that blocks LDN
    Given the example patient "opioid-user"
    When the triage is explained
    Then the explanation for low_dose_naltrexone goes through rule LDN-CI-OPIOID
    And the explanation for low_dose_naltrexone goes through rule OPIOID-MEDICATION
    And the explanation for low_dose_naltrexone rests on the patient fact medication:tramadol
    And the explanation for low_dose_naltrexone says "medication 'tramadol' contains tramadol: an opioid"
    And the explanation for low_dose_naltrexone does not go through rule LDN-OFFER

  @ldn @boundary
  Scenario Outline: A 50-year-old with 16 weeks of pain after an 8-week failed pad trial and DN4 <score>/10: the explanation for LDN shows the DN4 compared with 4
    Given a 50-year-old female with 16 weeks of forefoot pain
    And neuropathic features <features>
    And metatarsal_pad tried for 8 weeks with response none
    When the triage is explained
    Then the explanation for low_dose_naltrexone goes through rule <rule>
    And the explanation for low_dose_naltrexone says "<text>"

    Examples:
      | score | features                                              | rule              | text                                         |
      | 3     | burning, tingling, numbness                           | LDN-NOT-INDICATED | DN4 3/10 is below the screening cutoff of 4  |
      | 4     | burning, tingling, numbness, electric_shocks          | DN4-PHENOTYPE     | DN4 4/10 ≥ 4                                 |
      | 5     | burning, tingling, numbness, electric_shocks, itching | DN4-PHENOTYPE     | DN4 5/10 ≥ 4                                 |

  @ldn
  Scenario: A 38-year-old with 3 weeks of pain and no neuropathic features listed: the DN4 is shown as unknown, never as 0/10, and it affects LDN
    Given the example patient "new-onset"
    When the triage is explained
    Then the explanation for low_dose_naltrexone shows the unknown dn4
    And the explanation for low_dose_naltrexone says "the DN4 is not recorded"
    And the explanation for low_dose_naltrexone goes through rule LDN-DEFERRED

  @ldn
  Scenario: A 38-year-old whose DN4 was assessed with no neuropathic feature has no DN4 assumption to show
    Given the example patient "new-onset"
    And the DN4 was assessed
    When the triage is explained
    Then the explanation for low_dose_naltrexone shows no unknown

  @first_line
  Scenario: A 45-year-old with no weight or height recorded: the explanation for weight management shows BMI unknown, not a normal BMI
    Given a 45-year-old female with 4 weeks of forefoot pain
    When the triage is explained
    Then the explanation for weight_management shows the unknown bmi
    And the explanation for weight_management says "weight management was not evaluated"
    And the explanation for weight_management checked "bmi(value ≥ 25.0)" absent

  @safety
  Scenario: A 67-year-old with suspected Charcot: the explanation for pulsed radiofrequency names the red flag that suppressed it
    Given the example patient "red-flag-charcot"
    When the triage is explained
    Then the explanation for pulsed_radiofrequency goes through rule RF-SUPPRESS-ESCALATION
    And the explanation for pulsed_radiofrequency rests on the patient fact red_flag:suspected_charcot
    And the explanation for pulsed_radiofrequency goes through rule PRF-DEFERRED
