@safety
Feature: Red-flag safety screen
  The safety screen runs first (CLINICAL.md section 1). Any red flag gives an urgent referral with
  the reason, and routine care waits for the urgent assessment: first-line modalities that are
  not protective are not started (or are reviewed before continuing), while the simple protective
  measures, footwear modification and activity modification, are still listed. Escalation under
  a red flag is specified in red_flag_suppression.feature.

  Background:
    Given a 67-year-old female with 5 weeks of forefoot pain
    And weight 88 kg and height 160 cm
    And comorbidity rheumatoid_arthritis
    And the examination finds gastrocnemius_tightness
    And the examination finds plantar_callus

  Scenario Outline: A 67-year-old with 5 weeks of forefoot pain and <text> is referred urgently, told what to do, who to and how fast, from its source
    Given red flag <flag>
    When the patient is triaged
    Then urgent_referral is recommended as urgent_referral
    And the rationale of urgent_referral mentions "red flag: <text>"
    And the details of urgent_referral mention "<action>"
    And the details of urgent_referral mention "<when>"
    And the details of urgent_referral mention "<basis>"
    And the evidence for urgent_referral is SORT C with not_graded certainty
    And the evidence for urgent_referral cites <citation>
    And the red flags are <flag>
    And rule RF-URGENT fires
    And rule RF-SUPPRESS-ESCALATION fires
    And no escalation is recommended

    Examples:
      | flag                      | text                               | action                                | when                                  | basis                  | citation                 |
      | suspected_stress_fracture | suspected stress fracture          | X-ray first                           | expert consensus                      | ACR Appropriateness    | acr-stress-fracture-2024 |
      | suspected_infection       | suspected infection                | start treatment without delay         | immediately if limb- or life-threatening | NICE NG19           | nice-ng19                |
      | suspected_charcot         | suspected Charcot neuroarthropathy | no weight at all on the foot          | within 1 working day                  | NICE NG19              | nice-ng19                |
      | critical_ischemia         | critical limb ischaemia            | vascular multidisciplinary team       | urgently                              | NICE CG147             | nice-cg147               |
      | suspected_tumor           | suspected tumour                   | X-ray the foot                        | within 48 hours                       | Scottish referral      | scottish-cancer-2019     |
      | acute_trauma              | acute trauma                       | Ottawa foot rule                      | the same day                          | Stiell 1992            | stiell-1992              |
      | foot_ulcer                | foot ulceration                    | offload the ulcer                     | within 1 working day                  | NICE NG19              | nice-ng19                |

  Scenario: A 67-year-old with 5 weeks of forefoot pain and no red flag gets no urgent referral
    When the patient is triaged
    Then urgent_referral is not mentioned
    And no red flag is reported
    And rule RF-URGENT does not fire
    And rule RF-SUPPRESS-ESCALATION does not fire

  Scenario: A 67-year-old with both suspected infection and critical ischaemia gets one urgent referral naming both
    Given red flag suspected_infection
    And red flag critical_ischemia
    When the patient is triaged
    Then urgent_referral is recommended as urgent_referral
    And the details of urgent_referral mention "suspected infection"
    And the details of urgent_referral mention "critical limb ischaemia"
    And the red flags are critical_ischemia, suspected_infection

  Scenario Outline: Under a suspected stress fracture, <modality> stays as a protective measure until the urgent assessment
    Given red flag suspected_stress_fracture
    When the patient is triaged
    Then <modality> is recommended as first_line
    And the details of <modality> mention "as a protective measure only, until the urgent assessment"
    And rule <rule> fires

    Examples:
      | modality              | rule        |
      | footwear_modification | FL-FOOTWEAR |
      | activity_modification | FL-ACTIVITY |

  Scenario Outline: Under a suspected stress fracture, <modality> is not started until the urgent assessment
    Given red flag suspected_stress_fracture
    When the patient is triaged
    Then <modality> is not recommended as suppressed because "suspected stress fracture"
    And <modality> is not recommended as suppressed because "not started until the urgent assessment"
    And rule <rf_rule> fires
    And rule <offer> does not fire

    Examples:
      | modality           | offer      | rf_rule       |
      | metatarsal_pad     | FL-PAD     | FL-PAD-RF     |
      | insoles            | FL-INSOLES | FL-INSOLES-RF |
      | calf_stretching    | FL-STRETCH | FL-STRETCH-RF |
      | weight_management  | FL-WEIGHT  | FL-WEIGHT-RF  |
      | callus_debridement | FL-CALLUS  | FL-CALLUS-RF  |

  Scenario Outline: Under a suspected infection, <modality> already under way for 3 weeks with a partial response is reviewed before continuing
    Given red flag suspected_infection
    And <modality> tried for 3 weeks with response partial
    When the patient is triaged
    Then <modality> is not recommended as suppressed because "review after the urgent assessment before continuing"
    And rule <continue_rf> fires
    And rule <continue> does not fire
    And rule <rf_rule> does not fire

    Examples:
      | modality           | continue            | continue_rf            | rf_rule       |
      | metatarsal_pad     | FL-PAD-CONTINUE     | FL-PAD-CONTINUE-RF     | FL-PAD-RF     |
      | insoles            | FL-INSOLES-CONTINUE | FL-INSOLES-CONTINUE-RF | FL-INSOLES-RF |
      | calf_stretching    | FL-STRETCH-CONTINUE | FL-STRETCH-CONTINUE-RF | FL-STRETCH-RF |
      | weight_management  | FL-WEIGHT-CONTINUE  | FL-WEIGHT-CONTINUE-RF  | FL-WEIGHT-RF  |
      | callus_debridement | FL-CALLUS-CONTINUE  | FL-CALLUS-CONTINUE-RF  | FL-CALLUS-RF  |

  Scenario Outline: Without a red flag, <modality> under way for 3 weeks with a partial response is simply continued
    Given <modality> tried for 3 weeks with response partial
    When the patient is triaged
    Then <modality> is recommended as first_line
    And rule <continue> fires
    And rule <continue_rf> does not fire

    Examples:
      | modality           | continue            | continue_rf            |
      | metatarsal_pad     | FL-PAD-CONTINUE     | FL-PAD-CONTINUE-RF     |
      | insoles            | FL-INSOLES-CONTINUE | FL-INSOLES-CONTINUE-RF |
      | calf_stretching    | FL-STRETCH-CONTINUE | FL-STRETCH-CONTINUE-RF |
      | weight_management  | FL-WEIGHT-CONTINUE  | FL-WEIGHT-CONTINUE-RF  |
      | callus_debridement | FL-CALLUS-CONTINUE  | FL-CALLUS-CONTINUE-RF  |

  Scenario Outline: Without a red flag, the 67-year-old with rheumatoid arthritis, tight calves, callus and a BMI of 34.4 is offered <modality>
    When the patient is triaged
    Then <modality> is recommended as first_line
    And rule <offer> fires
    And rule <rf_rule> does not fire

    Examples:
      | modality           | offer      | rf_rule       |
      | metatarsal_pad     | FL-PAD     | FL-PAD-RF     |
      | insoles            | FL-INSOLES | FL-INSOLES-RF |
      | calf_stretching    | FL-STRETCH | FL-STRETCH-RF |
      | weight_management  | FL-WEIGHT  | FL-WEIGHT-RF  |
      | callus_debridement | FL-CALLUS  | FL-CALLUS-RF  |
