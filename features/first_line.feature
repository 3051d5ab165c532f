@first_line
Feature: First-line conservative care
  Everyone with forefoot pain is offered first-line conservative care unless a red flag says
  otherwise (CLINICAL.md section 2): footwear modification, a metatarsal pad and activity
  modification for all; simple insoles in rheumatoid arthritis; calf stretching for gastrocnemius
  tightness; weight management from a BMI of 25; callus debridement for plantar callus. A modality
  already tried is continued when it helped or has not yet had an adequate 6-week trial, and is
  not simply repeated when an adequate trial brought no benefit, made the pain worse or was not
  tolerated. (Red-flag gating of first-line care is specified in safety.feature.)

  Scenario: A 38-year-old with 3 weeks of forefoot pain and nothing tried is offered footwear, a metatarsal pad and activity modification
    Given a 38-year-old male with 3 weeks of forefoot pain
    When the patient is triaged
    Then footwear_modification is recommended as first_line
    And metatarsal_pad is recommended as first_line
    And activity_modification is recommended as first_line
    And rule FL-FOOTWEAR fires
    And rule FL-PAD fires
    And rule FL-ACTIVITY fires
    And rule FL-PAD-RF does not fire
    And the details of metatarsal_pad mention "just proximal to the painful metatarsal heads"
    And the details of footwear_modification mention "wide toe box, low heel, stiff or rocker sole"

  Scenario: A 38-year-old with 3 weeks of forefoot pain and no relevant finding is not offered insoles, stretching, weight management or callus care
    Given a 38-year-old male with 3 weeks of forefoot pain
    When the patient is triaged
    Then insoles is not mentioned
    And calf_stretching is not mentioned
    And weight_management is not mentioned
    And callus_debridement is not mentioned
    And rule FL-INSOLES does not fire
    And rule FL-STRETCH does not fire
    And rule FL-WEIGHT does not fire
    And rule FL-CALLUS does not fire

  Scenario Outline: A 38-year-old with 3 weeks of forefoot pain and <finding> on examination is offered <modality>
    Given a 38-year-old male with 3 weeks of forefoot pain
    And the examination finds <finding>
    When the patient is triaged
    Then <modality> is recommended as first_line
    And rule <rule> fires
    And rule <rf_rule> does not fire
    And the rationale of <modality> mentions "<why>"

    Examples:
      | finding                 | modality           | rule        | rf_rule        | why                                    |
      | plantar_callus          | callus_debridement | FL-CALLUS   | FL-CALLUS-RF   | plantar callus on examination          |
      | gastrocnemius_tightness | calf_stretching    | FL-STRETCH  | FL-STRETCH-RF  | gastrocnemius tightness on examination |

  Scenario: A 47-year-old with rheumatoid arthritis and 10 weeks of forefoot pain is offered simple insoles with SORT B evidence from the RA studies
    Given a 47-year-old female with 10 weeks of forefoot pain
    And comorbidity rheumatoid_arthritis
    When the patient is triaged
    Then insoles is recommended as first_line
    And rule FL-INSOLES fires
    And rule FL-INSOLES-RF does not fire
    And the evidence for insoles is SORT B with low certainty
    And the evidence for insoles cites bartolo-2022
    And the evidence for insoles cites chalmers-2000
    And the evidence for insoles cites mejjad-2004
    And the rationale of insoles mentions "rheumatoid arthritis"
    And the details of insoles mention "less forefoot pain"

  Scenario: The metatarsal pad carries SORT B, low-certainty evidence on pad placement
    Given a 38-year-old male with 3 weeks of forefoot pain
    When the patient is triaged
    Then the evidence for metatarsal_pad is SORT B with low certainty
    And the evidence for metatarsal_pad cites kang-2006
    And the evidence for metatarsal_pad cites hsi-2005

  @boundary
  Scenario Outline: A 52-year-old weighing <weight> kg at 200 cm has a BMI of <bmi> and <is_or_not> offered weight management (BMI 25)
    Given a 52-year-old female with 6 weeks of forefoot pain
    And weight <weight> kg and height 200 cm
    When the patient is triaged
    Then the trace explains "= <bmi>"
    And rule FL-WEIGHT <weight_rule>
    And weight_management <verdict>

    Examples:
      | weight | bmi  | is_or_not | weight_rule   | verdict                       |
      | 99.6   | 24.9 | is not    | does not fire | is not mentioned              |
      | 100    | 25.0 | is        | fires         | is recommended as first_line  |
      | 100.4  | 25.1 | is        | fires         | is recommended as first_line  |

  Scenario: A 52-year-old with a BMI of 30.9 is offered weight management, with the BMI in the rationale
    Given a 52-year-old female with 6 weeks of forefoot pain
    And weight 100 kg and height 180 cm
    When the patient is triaged
    Then weight_management is recommended as first_line
    And the rationale of weight_management mentions "BMI 30.9 ≥ 25.0"

  # ---------------------------------------------------------------- already tried

  Scenario Outline: A 50-year-old who wore <modality> for 8 weeks without benefit is not simply re-offered it, and it counts as failed conservative care
    Given a 50-year-old female with 10 weeks of forefoot pain
    And weight 100 kg and height 180 cm
    And comorbidity rheumatoid_arthritis
    And the examination finds gastrocnemius_tightness
    And the examination finds plantar_callus
    And <modality> tried for 8 weeks with response none
    When the patient is triaged
    Then <modality> is not recommended as not_indicated because "not simply repeated"
    And <modality> is not recommended as not_indicated because "counts toward failed conservative care"
    And rule <tried> fires
    And rule <offer> does not fire
    And rule <continue> does not fire
    And the trace explains "adequate first-line trials without resolution: 1 (<modality>), 8 weeks in total"

    Examples:
      | modality              | offer       | continue             | tried             |
      | metatarsal_pad        | FL-PAD      | FL-PAD-CONTINUE      | FL-PAD-TRIED      |
      | insoles               | FL-INSOLES  | FL-INSOLES-CONTINUE  | FL-INSOLES-TRIED  |
      | calf_stretching       | FL-STRETCH  | FL-STRETCH-CONTINUE  | FL-STRETCH-TRIED  |
      | weight_management     | FL-WEIGHT   | FL-WEIGHT-CONTINUE   | FL-WEIGHT-TRIED   |
      | callus_debridement    | FL-CALLUS   | FL-CALLUS-CONTINUE   | FL-CALLUS-TRIED   |

  Scenario Outline: A 50-year-old who tried <modality> for 8 weeks without benefit is told to continue and optimise it: it is the baseline of every plan, and it counts as failed conservative care
    Given a 50-year-old female with 10 weeks of forefoot pain
    And <modality> tried for 8 weeks with response <response>
    When the patient is triaged
    Then <modality> is recommended as first_line
    And the rationale of <modality> mentions "<advice>"
    And the rationale of <modality> mentions "baseline of every plan"
    And rule <tried> fires
    And rule <offer> does not fire
    And rule <offer>-CONTINUE does not fire
    And <modality> is not withheld as not_indicated

    Examples:
      | modality              | response      | advice                                | offer       | tried             |
      | footwear_modification | none          | continue and optimise                 | FL-FOOTWEAR | FL-FOOTWEAR-TRIED |
      | footwear_modification | worsened      | change the approach                   | FL-FOOTWEAR | FL-FOOTWEAR-TRIED |
      | activity_modification | none          | continue and optimise                 | FL-ACTIVITY | FL-ACTIVITY-TRIED |
      | activity_modification | not_tolerated | change the approach                   | FL-ACTIVITY | FL-ACTIVITY-TRIED |

  Scenario Outline: A 50-year-old with a partial response to 8 weeks of <modality> is told to continue and optimise it
    Given a 50-year-old female with 10 weeks of forefoot pain
    And weight 100 kg and height 180 cm
    And comorbidity rheumatoid_arthritis
    And the examination finds gastrocnemius_tightness
    And the examination finds plantar_callus
    And <modality> tried for 8 weeks with response partial
    When the patient is triaged
    Then <modality> is recommended as first_line
    And the details of <modality> mention "partial response: continue and optimise"
    And rule <continue> fires
    And rule <offer> does not fire
    And rule <tried> does not fire
    And <modality> is not withheld as not_indicated

    Examples:
      | modality              | offer       | continue             | tried             |
      | footwear_modification | FL-FOOTWEAR | FL-FOOTWEAR-CONTINUE | FL-FOOTWEAR-TRIED |
      | activity_modification | FL-ACTIVITY | FL-ACTIVITY-CONTINUE | FL-ACTIVITY-TRIED |
      | metatarsal_pad        | FL-PAD      | FL-PAD-CONTINUE      | FL-PAD-TRIED      |
      | insoles               | FL-INSOLES  | FL-INSOLES-CONTINUE  | FL-INSOLES-TRIED  |
      | calf_stretching       | FL-STRETCH  | FL-STRETCH-CONTINUE  | FL-STRETCH-TRIED  |
      | weight_management     | FL-WEIGHT   | FL-WEIGHT-CONTINUE   | FL-WEIGHT-TRIED   |
      | callus_debridement    | FL-CALLUS   | FL-CALLUS-CONTINUE   | FL-CALLUS-TRIED   |

  Scenario Outline: A 50-year-old who tried <modality> for 8 weeks without benefit is told to continue and optimise it: it is the baseline of every plan, and it counts as failed conservative care
    Given a 50-year-old female with 10 weeks of forefoot pain
    And <modality> tried for 8 weeks with response <response>
    When the patient is triaged
    Then <modality> is recommended as first_line
    And the rationale of <modality> mentions "<advice>"
    And the rationale of <modality> mentions "baseline of every plan"
    And rule <tried> fires
    And rule <offer> does not fire
    And rule <offer>-CONTINUE does not fire
    And <modality> is not withheld as not_indicated

    Examples:
      | modality              | response      | advice                                | offer       | tried             |
      | footwear_modification | none          | continue and optimise                 | FL-FOOTWEAR | FL-FOOTWEAR-TRIED |
      | footwear_modification | worsened      | change the approach                   | FL-FOOTWEAR | FL-FOOTWEAR-TRIED |
      | activity_modification | none          | continue and optimise                 | FL-ACTIVITY | FL-ACTIVITY-TRIED |
      | activity_modification | not_tolerated | change the approach                   | FL-ACTIVITY | FL-ACTIVITY-TRIED |

  Scenario Outline: A 50-year-old whose <modality> gave no benefit in 8 weeks is told <hint>
    Given a 50-year-old female with 10 weeks of forefoot pain
    And <modality> tried for 8 weeks with response none
    When the patient is triaged
    Then <modality> is not recommended as not_indicated because "<reason>"

    Examples:
      | modality              | hint                                  | reason                                                                        |
      | metatarsal_pad        | to check fit or placement             | so not simply repeated (check fit or placement); counts toward failed         |
      | insoles               | to check fit or placement             | so not simply repeated (check fit or placement); counts toward failed         |
      | calf_stretching       | it is not simply repeated (no device) | so not simply repeated; counts toward failed                                  |
      | weight_management     | it is not simply repeated (no device) | so not simply repeated; counts toward failed                                  |
      | callus_debridement    | it is not simply repeated (no device) | so not simply repeated; counts toward failed                                  |

  Scenario Outline: A metatarsal pad tried for <weeks> weeks with response <response> is <decision>
    Given a 50-year-old female with 10 weeks of forefoot pain
    And metatarsal_pad tried for <weeks> weeks with response <response>
    When the patient is triaged
    Then rule <rule> fires
    And rule FL-PAD does not fire
    And the trace explains "metatarsal_pad: <weeks> weeks, response <response>"
    And metatarsal_pad <verdict>

    Examples:
      | weeks | response      | decision                                 | rule            | verdict                                                                           |
      | 3     | none          | continued: shorter than a 6-week trial   | FL-PAD-CONTINUE | is recommended as first_line                                                      |
      | 8     | resolved      | continued: it resolved the pain          | FL-PAD-CONTINUE | is recommended as first_line                                                      |
      | 2     | worsened      | not repeated: it made the pain worse     | FL-PAD-TRIED    | is not recommended as not_indicated because "pain worsened with it: not repeated" |
      | 4     | not_tolerated | not repeated: it was not tolerated       | FL-PAD-TRIED    | is not recommended as not_indicated because "not tolerated: not repeated"         |

  Scenario: A 50-year-old whose pad resolved the pain after 8 weeks is told to continue it
    Given a 50-year-old female with 10 weeks of forefoot pain
    And metatarsal_pad tried for 8 weeks with response resolved
    When the patient is triaged
    Then the details of metatarsal_pad mention "it resolved the pain: continue"

  Scenario: A 50-year-old who wore a pad for only 3 weeks without benefit is told to continue it to an adequate 6-week trial
    Given a 50-year-old female with 10 weeks of forefoot pain
    And metatarsal_pad tried for 3 weeks with response none
    When the patient is triaged
    Then the details of metatarsal_pad mention "shorter than an adequate trial (6 weeks): continue"
    And metatarsal_pad is not withheld as not_indicated
