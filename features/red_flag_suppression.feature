@escalation @red_flags
Feature: Red flags suppress every escalation
  A red flag stops routine escalation (CLINICAL.md sections 1, 4 and 5): however eligible the
  patient, LDN, pulsed radiofrequency and every surgical referral are not recommended, kind
  suppressed, with the red flag as the reason, and the patient is referred urgently. The simple
  protective measures stay. Other reasons that withhold an option (a contraindication) are still
  listed beside the suppression.

  Background:
    Given a 58-year-old female with 30 weeks of forefoot pain
    And neuropathic features burning, tingling, numbness, electric_shocks, painful_cold
    And metatarsal_pad tried for 12 weeks with response none
    And footwear_modification tried for 12 weeks with response none
    And calf_stretching tried for 8 weeks with response none
    And the examination finds gastrocnemius_tightness
    And the examination finds plantar_plate_instability
    And the examination finds flexible_toe_deformity

  Scenario: Without a red flag, the 58-year-old with 30 weeks of recalcitrant neuropathic pain (32 weeks over 3 failed modalities) is offered every escalation
    When the patient is triaged
    Then low_dose_naltrexone is recommended as adjunct
    And pulsed_radiofrequency is recommended as interventional
    And gastrocnemius_recession is recommended as surgical_referral
    And plantar_plate_repair is recommended as surgical_referral
    And tendon_transfer is recommended as surgical_referral
    And rule RF-SUPPRESS-ESCALATION does not fire
    And urgent_referral is not mentioned
    And no intervention is both recommended and not recommended

  Scenario Outline: The same 58-year-old with a <text> is referred urgently and every escalation is suppressed
    Given red flag <flag>
    When the patient is triaged
    Then urgent_referral is recommended as urgent_referral
    And no escalation is recommended
    And rule RF-SUPPRESS-ESCALATION fires
    And rule LDN-OFFER does not fire
    And rule PRF-OFFER does not fire
    And rule SURG-GASTROC does not fire
    And rule SURG-PLATE does not fire
    And rule SURG-TENDON does not fire
    And no intervention is both recommended and not recommended

    Examples:
      | flag                      | text                                |
      | suspected_stress_fracture | suspected stress fracture           |
      | suspected_infection       | suspected infection                 |
      | suspected_charcot         | suspected Charcot neuroarthropathy  |
      | critical_ischemia         | critical limb ischaemia             |
      | suspected_tumor           | suspected tumour                    |
      | acute_trauma              | acute trauma                        |

  Scenario Outline: Under suspected Charcot neuroarthropathy, <intervention> is suppressed with the red flag as the reason
    Given red flag suspected_charcot
    When the patient is triaged
    Then <intervention> is not recommended as suppressed because "red flag (suspected Charcot neuroarthropathy): urgent assessment first; routine escalation is stopped"

    Examples:
      | intervention            |
      | low_dose_naltrexone     |
      | pulsed_radiofrequency   |
      | gastrocnemius_recession |
      | plantar_plate_repair    |
      | tendon_transfer         |

  Scenario: Under a suspected stress fracture, activity modification stays as a protective measure for the 58-year-old
    Given red flag suspected_stress_fracture
    When the patient is triaged
    Then activity_modification is recommended as first_line
    And the details of activity_modification mention "as a protective measure only, until the urgent assessment"

  Scenario: Under suspected infection, a 58-year-old eligible for LDN but taking tramadol learns both that LDN is contraindicated and that it is suppressed
    Given red flag suspected_infection
    And medication "tramadol"
    When the patient is triaged
    Then low_dose_naltrexone is not recommended as contraindicated because "tramadol is an opioid"
    And low_dose_naltrexone is not recommended as suppressed because "suspected infection"
    And rule LDN-CI-OPIOID fires
    And rule RF-SUPPRESS-ESCALATION fires
