@under_treatment
Feature: Patients already under treatment
  Most patients a forefoot clinic sees have tried something already (CLINICAL.md sections 1-5,
  rule set 1.2). A past trial never creates an indication; footwear and activity advice are the
  baseline of every plan; a treatment under way is continued, not restarted; a procedure already
  done is not offered again; trials are counted in calendar weeks, at most the pain's duration; a
  DN4 nobody recorded is unknown, not 0/10; and every plan says when to review it.

  # ---------------------------------------------------------------- the indication gates each modality

  @first_line
  Scenario: A 45-year-old with a BMI of 18.7 who tried weight management before is not advised to lose weight
    Given a 45-year-old female with 10 weeks of forefoot pain
    And weight 54 kg and height 170 cm
    And weight_management tried for 8 weeks with response partial
    When the patient is triaged
    Then weight_management is not recommended as not_indicated because "BMI 18.7 is below 25.0: not indicated, whatever was tried before"
    And rule FL-WEIGHT-NO-INDICATION fires
    And rule FL-WEIGHT-CONTINUE does not fire

  @first_line
  Scenario: A 45-year-old with a BMI of 31.1 who tried weight management with a partial response is told to continue it
    Given a 45-year-old female with 10 weeks of forefoot pain
    And weight 90 kg and height 170 cm
    And weight_management tried for 8 weeks with response partial
    When the patient is triaged
    Then weight_management is recommended as first_line
    And rule FL-WEIGHT-CONTINUE fires
    And rule FL-WEIGHT-NO-INDICATION does not fire

  @first_line
  Scenario Outline: A 45-year-old who tried <modality> before but has no <finding> is not offered it again: a past trial is not an indication
    Given a 45-year-old female with 10 weeks of forefoot pain
    And <modality> tried for 8 weeks with response partial
    When the patient is triaged
    Then <modality> is not recommended as not_indicated because "<reason>"
    And <modality> is not recommended as not_indicated because "whatever was tried before"
    And rule <rule> fires
    And rule <continue> does not fire

    Examples:
      | modality           | finding                 | reason                                              | rule                     | continue            |
      | callus_debridement | plantar callus          | no plantar callus recorded on examination           | FL-CALLUS-NO-INDICATION  | FL-CALLUS-CONTINUE  |
      | calf_stretching    | gastrocnemius tightness | no gastrocnemius tightness recorded on examination  | FL-STRETCH-NO-INDICATION | FL-STRETCH-CONTINUE |
      | insoles            | rheumatoid arthritis    | no rheumatoid arthritis recorded                    | FL-INSOLES-NO-INDICATION | FL-INSOLES-CONTINUE |

  @first_line
  Scenario Outline: A 45-year-old with <finding> who tried <modality> with a partial response is told to continue it
    Given a 45-year-old female with 10 weeks of forefoot pain
    And <given>
    And <modality> tried for 8 weeks with response partial
    When the patient is triaged
    Then <modality> is recommended as first_line
    And rule <continue> fires
    And rule <rule> does not fire

    Examples:
      | modality           | finding                 | given                                         | rule                     | continue            |
      | callus_debridement | plantar callus          | the examination finds plantar_callus          | FL-CALLUS-NO-INDICATION  | FL-CALLUS-CONTINUE  |
      | calf_stretching    | gastrocnemius tightness | the examination finds gastrocnemius_tightness | FL-STRETCH-NO-INDICATION | FL-STRETCH-CONTINUE |
      | insoles            | rheumatoid arthritis    | comorbidity rheumatoid_arthritis              | FL-INSOLES-NO-INDICATION | FL-INSOLES-CONTINUE |

  # ---------------------------------------------------------------- a plan is never without its baseline

  @first_line
  Scenario: A 60-year-old after four failed first-line modalities still gets footwear and activity advice beside pulsed radiofrequency
    Given a 60-year-old male with 40 weeks of forefoot pain
    And footwear_modification tried for 10 weeks with response none
    And metatarsal_pad tried for 10 weeks with response none
    And activity_modification tried for 10 weeks with response none
    And insoles tried for 10 weeks with response none
    When the patient is triaged
    Then the first-line plan has footwear_modification, activity_modification
    And pulsed_radiofrequency is recommended as interventional
    And the rationale of footwear_modification mentions "continue and optimise"
    And the rationale of activity_modification mentions "continue and optimise"
    And rule FL-FOOTWEAR-TRIED fires
    And rule FL-ACTIVITY-TRIED fires

  @first_line
  Scenario: Every first-line recommendation says when to review it: at 6 weeks, an adequate trial
    Given a 45-year-old female with 3 weeks of forefoot pain
    When the patient is triaged
    Then the review of footwear_modification is at 6 weeks
    And the review of metatarsal_pad is at 6 weeks
    And the review of activity_modification is at 6 weeks

  # ---------------------------------------------------------------- LDN under way

  @ldn
  Scenario: A 54-year-old taking LDN for 6 weeks with a partial response is told to continue the titration and judge it at 12 weeks, never to start 1.5 mg
    Given a 54-year-old female with 30 weeks of forefoot pain
    And neuropathic features burning, tingling, numbness, electric_shocks
    And metatarsal_pad tried for 8 weeks with response none
    And low_dose_naltrexone tried for 6 weeks with response partial
    When the patient is triaged
    Then low_dose_naltrexone is recommended as adjunct
    And the rationale of low_dose_naltrexone mentions "continue the titration; judge benefit at about 12 weeks"
    And no result says "start 1.5 mg"
    And the review of low_dose_naltrexone is at 6 weeks
    And rule LDN-CONTINUE fires
    And rule LDN-OFFER does not fire

  @ldn
  Scenario: A 54-year-old on LDN for 6 weeks whose DN4 has fallen to 2/10 is told LDN is current, not that it is not indicated
    Given a 54-year-old female with 30 weeks of forefoot pain
    And neuropathic features burning, tingling
    And metatarsal_pad tried for 8 weeks with response none
    And low_dose_naltrexone tried for 6 weeks with response partial
    When the patient is triaged
    Then low_dose_naltrexone is recommended as adjunct
    And the rationale of low_dose_naltrexone mentions "DN4 now 2/10, below the cutoff: LDN is current"
    And low_dose_naltrexone is not withheld as not_indicated
    And rule LDN-NOT-INDICATED does not fire

  @ldn @boundary
  Scenario Outline: A 54-year-old who has taken LDN for <weeks> weeks with a <response> response <decision> (judged at 12 weeks)
    Given a 54-year-old female with 30 weeks of forefoot pain
    And neuropathic features burning, tingling, numbness, electric_shocks
    And metatarsal_pad tried for 8 weeks with response none
    And low_dose_naltrexone tried for <weeks> weeks with response <response>
    When the patient is triaged
    Then low_dose_naltrexone is recommended as adjunct
    And rule LDN-IN-PROGRESS <progress>
    And rule LDN-HELPING <helping>

    Examples:
      | weeks | response | decision                                       | progress      | helping       |
      | 11.9  | partial  | is told to continue to the 12-week review      | fires         | does not fire |
      | 12    | partial  | is told to continue: it helps                  | does not fire | fires         |
      | 20    | resolved | is told to continue: it helps                  | does not fire | fires         |

  # ---------------------------------------------------------------- procedures already done

  @surgical
  Scenario Outline: A 60-year-old with recalcitrant pain whose <procedure> was done 20 weeks ago is not offered it again but referred back for review
    Given a 60-year-old male with 40 weeks of forefoot pain
    And footwear_modification tried for 10 weeks with response none
    And metatarsal_pad tried for 10 weeks with response none
    And activity_modification tried for 10 weeks with response none
    And calf_stretching tried for 10 weeks with response none
    And the examination finds <finding>
    And <procedure> tried for 20 weeks with response partial
    When the patient is triaged
    Then <procedure> is not recommended as not_indicated because "already done 20 weeks ago (response partial): refer back for a surgical review instead"
    And rule <done> fires
    And rule <offer> does not fire

    Examples:
      | procedure               | finding                   | done              | offer         |
      | gastrocnemius_recession | gastrocnemius_tightness   | SURG-GASTROC-DONE | SURG-GASTROC  |
      | plantar_plate_repair    | plantar_plate_instability | SURG-PLATE-DONE   | SURG-PLATE    |
      | tendon_transfer         | flexible_toe_deformity    | SURG-TENDON-DONE  | SURG-TENDON   |

  @surgical
  Scenario Outline: A 60-year-old with recalcitrant pain and <finding> who has not had <procedure> is referred for it
    Given a 60-year-old male with 40 weeks of forefoot pain
    And footwear_modification tried for 10 weeks with response none
    And metatarsal_pad tried for 10 weeks with response none
    And activity_modification tried for 10 weeks with response none
    And calf_stretching tried for 10 weeks with response none
    And the examination finds <finding>
    When the patient is triaged
    Then <procedure> is recommended as surgical_referral
    And rule <done> does not fire

    Examples:
      | procedure               | finding                   | done              |
      | gastrocnemius_recession | gastrocnemius_tightness   | SURG-GASTROC-DONE |
      | plantar_plate_repair    | plantar_plate_instability | SURG-PLATE-DONE   |
      | tendon_transfer         | flexible_toe_deformity    | SURG-TENDON-DONE  |

  # ---------------------------------------------------------------- calendar weeks

  @findings @boundary
  Scenario Outline: A 50-year-old with <pain> weeks of pain after pads and footwear of 14 weeks each, side by side, counts <counted> weeks of failed care (at most the pain's duration; recalcitrant from 24)
    Given a 50-year-old female with <pain> weeks of forefoot pain
    And neuropathic features burning
    And metatarsal_pad tried for 14 weeks with response none
    And footwear_modification tried for 14 weeks with response none
    When the patient is triaged
    Then the trace explains "<explains>"
    And rule RECALCITRANT-WEEKS <recalcitrant>

    Examples:
      | pain | counted | explains                                                                                       | recalcitrant  |
      | 14   | 14      | 28 weeks in total, counted as 14 weeks: weeks are calendar time, at most the pain's duration | does not fire |
      | 23.9 | 23.9    | counted as 23.9 weeks                                                                          | does not fire |
      | 24   | 24      | counted as 24 weeks                                                                            | fires         |
      | 28   | 28      | 2 (footwear_modification, metatarsal_pad), 28 weeks in total                                   | fires         |

  @findings
  Scenario: A 40-year-old with 12 weeks of pain whose pad trial is recorded as 30 weeks has the trial named as a likely entry error and counted as 12 weeks
    Given a 40-year-old female with 12 weeks of forefoot pain
    And metatarsal_pad tried for 30 weeks with response none
    When the patient is triaged
    Then trial:metatarsal_pad is listed as unknown
    And the trace explains "counted as 12 weeks"
    And rule TRIAL-EXCEEDS-PAIN fires
    And rule RECALCITRANT-WEEKS does not fire

  @findings @boundary
  Scenario Outline: A 40-year-old with 12 weeks of pain whose pad trial is recorded as <trial> weeks <decision> (at most the pain's duration)
    Given a 40-year-old female with 12 weeks of forefoot pain
    And metatarsal_pad tried for <trial> weeks with response none
    When the patient is triaged
    Then rule TRIAL-EXCEEDS-PAIN <fires>

    Examples:
      | trial | decision                              | fires         |
      | 12    | is taken as recorded                  | does not fire |
      | 12.1  | is named as a likely entry error      | fires         |

  # ---------------------------------------------------------------- DN4 nobody recorded

  @ldn
  Scenario: A 54-year-old with persistent pain and no DN4 recorded is told to assess the DN4, never that LDN is not indicated on an assumed 0/10
    Given a 54-year-old female with 16 weeks of forefoot pain
    And metatarsal_pad tried for 8 weeks with response none
    When the patient is triaged
    Then low_dose_naltrexone is not recommended as deferred because "the DN4 is not recorded: assess the DN4"
    And low_dose_naltrexone is not withheld as not_indicated
    And no result says "0/10"
    And rule LDN-DEFERRED-DN4 fires
    And rule LDN-NOT-INDICATED does not fire

  @ldn
  Scenario: A 54-year-old with persistent pain whose DN4 was assessed and found 0/10 is told LDN is not indicated
    Given a 54-year-old female with 16 weeks of forefoot pain
    And metatarsal_pad tried for 8 weeks with response none
    And the DN4 was assessed
    When the patient is triaged
    Then low_dose_naltrexone is not recommended as not_indicated because "DN4 0/10 is below the screening cutoff of 4"
    And rule LDN-DEFERRED-DN4 does not fire
