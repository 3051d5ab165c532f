@escalation @ldn
Feature: Low-dose naltrexone as an adjunct
  LDN may be considered as an adjunct when the pain is persistent (12 weeks or more despite an
  adequate first-line trial of at least 6 weeks) and the DN4 screen gives a neuropathic phenotype
  (4/10 or more), with no red flag and no contraindication (CLINICAL.md section 4). Its evidence
  is indirect (fibromyalgia and neuropathic corneal pain; no study of LDN in metatarsalgia):
  SORT C, GRADE very low, "may be considered". Before the pain is persistent LDN is deferred,
  saying what is missing; without the neuropathic phenotype it is not indicated. LDN already
  tried is judged at 12 weeks. (Contraindications and cautions: ldn_contraindications.feature.)

  Scenario: A 54-year-old with 16 weeks of burning forefoot pain after 8 weeks of pads is offered LDN as an adjunct
    Given a 54-year-old female with 16 weeks of forefoot pain
    And neuropathic features burning, tingling, numbness, electric_shocks
    And metatarsal_pad tried for 8 weeks with response none
    When the patient is triaged
    Then low_dose_naltrexone is recommended as adjunct
    And the strength of low_dose_naltrexone is "may be considered"
    And rule LDN-OFFER fires
    And rule LDN-DEFERRED does not fire
    And rule LDN-NOT-INDICATED does not fire
    And rule LDN-TRIED does not fire
    And rule LDN-TRIED-NO-BENEFIT does not fire
    And the rationale of low_dose_naltrexone mentions "persistent pain: 16 weeks despite an adequate conservative trial"
    And the rationale of low_dose_naltrexone mentions "DN4 4/10 ≥ 4: neuropathic phenotype (a screen, not a diagnosis)"
    And the rationale of low_dose_naltrexone mentions "no opioid exposure recorded, and every medication was classified"
    And the review of low_dose_naltrexone is at 4 weeks
    And the rationale of low_dose_naltrexone mentions "no study of LDN in metatarsalgia"

  Scenario: LDN offered to the 54-year-old carries SORT C, very low certainty, indirect evidence citing the fibromyalgia trials
    Given a 54-year-old female with 16 weeks of forefoot pain
    And neuropathic features burning, tingling, numbness, electric_shocks
    And metatarsal_pad tried for 8 weeks with response none
    When the patient is triaged
    Then the evidence for low_dose_naltrexone is SORT C with very_low certainty
    And the evidence for low_dose_naltrexone cites younger-2013
    And the evidence for low_dose_naltrexone cites younger-2009
    And the evidence for low_dose_naltrexone cites dieckmann-2017
    And the evidence for low_dose_naltrexone cites naltrexone-label
    And the evidence for low_dose_naltrexone is indirect

  Scenario Outline: LDN offered to the 54-year-old tells the prescriber: <what>
    Given a 54-year-old female with 16 weeks of forefoot pain
    And neuropathic features burning, tingling, numbness, electric_shocks
    And metatarsal_pad tried for 8 weeks with response none
    When the patient is triaged
    Then the details of low_dose_naltrexone mention "<text>"

    Examples:
      | what                                  | text                                                         |
      | the starting dose                     | start 1.5 mg orally at bedtime                               |
      | the titration to 4.5 mg               | increase by 1.5 mg every 1-2 weeks as tolerated to 4.5 mg    |
      | to take it every night                | take every night                                             |
      | that benefit may take 2-3 months      | maximum benefit may take 2-3 months (expert opinion          |
      | the common side effects               | vivid dreams, sleep disturbance, headache                    |
      | that it is compounded                 | compounded by a compounding pharmacy                         |
      | that commercial tablets are 50 mg     | commercial naltrexone tablets are 50 mg only                 |
      | that it is off-label                  | off-label use                                                |
      | to continue first-line care alongside | continue all first-line care alongside LDN                   |
      | the follow-up at 4 weeks              | review at 4 weeks (titration, side effects)                  |
      | when to judge benefit (12 weeks)      | judge benefit at about 12 weeks (expert opinion)             |
      | to confirm no opioid is taken         | opioid-free 7-10 days before starting                        |

  # ---------------------------------------------------------------- the boundaries

  @boundary
  Scenario Outline: A 54-year-old with <weeks> weeks of neuropathic forefoot pain after 8 weeks of pads is <decision> (persistent from 12 weeks)
    Given a 54-year-old female with <weeks> weeks of forefoot pain
    And neuropathic features burning, tingling, numbness, electric_shocks
    And metatarsal_pad tried for 8 weeks with response none
    When the patient is triaged
    Then low_dose_naltrexone <verdict>
    And rule LDN-OFFER <offer>
    And rule LDN-DEFERRED <deferred>

    Examples:
      | weeks | decision                     | verdict                                                          | offer         | deferred      |
      | 11    | told LDN is deferred         | is not recommended as deferred because "pain 11 weeks"           | does not fire | fires         |
      | 12    | offered LDN as an adjunct    | is recommended as adjunct                                        | fires         | does not fire |
      | 13    | offered LDN as an adjunct    | is recommended as adjunct                                        | fires         | does not fire |

  @boundary
  Scenario Outline: A 54-year-old with 16 weeks of forefoot pain after 8 weeks of pads and <score> of 10 DN4 items is <decision> (DN4 cutoff 4)
    Given a 54-year-old female with 16 weeks of forefoot pain
    And neuropathic features <items>
    And metatarsal_pad tried for 8 weeks with response none
    When the patient is triaged
    Then low_dose_naltrexone <verdict>
    And rule LDN-OFFER <offer>
    And rule LDN-NOT-INDICATED <not_indicated>

    Examples:
      | score | items                                                      | decision                  | verdict                                                                                                        | offer         | not_indicated |
      | 3     | burning, tingling, numbness                                | told LDN is not indicated | is not recommended as not_indicated because "DN4 3/10 is below the screening cutoff of 4: no neuropathic phenotype" | does not fire | fires         |
      | 4     | burning, tingling, numbness, electric_shocks               | offered LDN               | is recommended as adjunct                                                                                      | fires         | does not fire |
      | 5     | burning, tingling, numbness, electric_shocks, painful_cold | offered LDN               | is recommended as adjunct                                                                                      | fires         | does not fire |

  @boundary
  Scenario Outline: A 54-year-old with 16 weeks of neuropathic forefoot pain after <pad> weeks of pads without benefit is <decision> (adequate trial from 6 weeks)
    Given a 54-year-old female with 16 weeks of forefoot pain
    And neuropathic features burning, tingling, numbness, electric_shocks
    And metatarsal_pad tried for <pad> weeks with response none
    When the patient is triaged
    Then low_dose_naltrexone <verdict>
    And rule LDN-OFFER <offer>
    And rule LDN-DEFERRED <deferred>

    Examples:
      | pad | decision                  | verdict                                                                                             | offer         | deferred      |
      | 5   | told LDN is deferred      | is not recommended as deferred because "no first-line trial of at least 6 weeks yet"                | does not fire | fires         |
      | 6   | offered LDN as an adjunct | is recommended as adjunct                                                                           | fires         | does not fire |
      | 7   | offered LDN as an adjunct | is recommended as adjunct                                                                           | fires         | does not fire |

  # ---------------------------------------------------------------- why not, in words

  Scenario: A 38-year-old with 3 weeks of burning forefoot pain is told LDN is deferred until 12 weeks of pain after a failed 6-week trial
    Given a 38-year-old male with 3 weeks of forefoot pain
    And neuropathic features burning, tingling, numbness, electric_shocks
    When the patient is triaged
    Then low_dose_naltrexone is not recommended as deferred because "pain 3 weeks"
    And low_dose_naltrexone is not recommended as deferred because "adjuncts are considered from 12 weeks of pain after a failed conservative trial of at least 6 weeks"
    And rule LDN-DEFERRED fires
    And rule LDN-NOT-INDICATED does not fire
    And no escalation is recommended

  Scenario: A 54-year-old with 16 weeks of neuropathic pain whose pad resolved it after 8 weeks is told LDN is deferred because the trial did not fail
    Given a 54-year-old female with 16 weeks of forefoot pain
    And neuropathic features burning, tingling, numbness, electric_shocks
    And metatarsal_pad tried for 8 weeks with response resolved
    When the patient is triaged
    Then low_dose_naltrexone is not recommended as deferred because "the adequate first-line trials did not fail (metatarsal_pad: resolved)"
    And rule LDN-OFFER does not fire

  Scenario: A 54-year-old with 16 weeks of pain after 8 weeks of pads and DN4 2/10 is told LDN is not indicated, and not also deferred
    Given a 54-year-old female with 16 weeks of forefoot pain
    And neuropathic features burning, tingling
    And metatarsal_pad tried for 8 weeks with response none
    When the patient is triaged
    Then low_dose_naltrexone is not recommended as not_indicated because "DN4 2/10"
    And low_dose_naltrexone is not withheld as deferred
    And rule LDN-NOT-INDICATED fires
    And rule LDN-DEFERRED does not fire

  # ---------------------------------------------------------------- LDN already tried

  @boundary
  Scenario Outline: A 54-year-old who took LDN for <ldn> weeks without benefit is <decision> (benefit judged at 12 weeks)
    Given a 54-year-old female with 30 weeks of forefoot pain
    And neuropathic features burning, tingling, numbness, electric_shocks
    And metatarsal_pad tried for 8 weeks with response none
    And low_dose_naltrexone tried for <ldn> weeks with response none
    When the patient is triaged
    Then low_dose_naltrexone <verdict>
    And rule LDN-TRIED-NO-BENEFIT <judged>
    And rule LDN-CONTINUE <continue>
    And rule LDN-OFFER does not fire

    Examples:
      | ldn | decision                                   | verdict                                                                                          | judged        | continue      |
      | 11  | told to continue it to the 12-week review  | is recommended as adjunct                                                                        | does not fire | fires         |
      | 12  | not offered it again                       | is not recommended as not_indicated because "already tried 12 weeks, response none: not repeated" | fires         | does not fire |
      | 13  | not offered it again                       | is not recommended as not_indicated because "already tried 13 weeks, response none: not repeated" | fires         | does not fire |

  Scenario Outline: A 54-year-old whose LDN <what> after <ldn> weeks is not offered it again
    Given a 54-year-old female with 30 weeks of forefoot pain
    And neuropathic features burning, tingling, numbness, electric_shocks
    And metatarsal_pad tried for 8 weeks with response none
    And low_dose_naltrexone tried for <ldn> weeks with response <response>
    When the patient is triaged
    Then low_dose_naltrexone is not recommended as not_indicated because "already tried <ldn> weeks, response <response>: not repeated"
    And rule LDN-TRIED fires
    And rule LDN-OFFER does not fire

    Examples:
      | what                    | ldn | response      |
      | made the pain worse     | 4   | worsened      |
      | was not tolerated       | 2   | not_tolerated |

  Scenario: A 54-year-old with a partial response to 8 weeks of LDN is offered it again, to continue
    Given a 54-year-old female with 30 weeks of forefoot pain
    And neuropathic features burning, tingling, numbness, electric_shocks
    And metatarsal_pad tried for 8 weeks with response none
    And low_dose_naltrexone tried for 8 weeks with response partial
    When the patient is triaged
    Then low_dose_naltrexone is recommended as adjunct
    And rule LDN-TRIED does not fire
    And rule LDN-TRIED-NO-BENEFIT does not fire
