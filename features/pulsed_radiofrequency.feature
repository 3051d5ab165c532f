@escalation @prf
Feature: Ultrasound-guided pulsed radiofrequency
  Ultrasound-guided pulsed radiofrequency (interventional) may be considered when the pain is
  recalcitrant: persistent, with adequate first-line trials without resolution adding up to 24
  weeks or more, or 3 or more different such modalities, and no red flag (CLINICAL.md section 4).
  Its evidence is a single case report: SORT C, GRADE very low. Before the pain is recalcitrant it
  is deferred, saying how far the patient is; a procedure already tried that made the pain worse,
  was not tolerated or gave no benefit after 6 weeks is not offered again.

  Background:
    Given a 58-year-old male with 30 weeks of forefoot pain
    And metatarsal_pad tried for 6 weeks with response none

  @boundary
  Scenario Outline: A 58-year-old with 30 weeks of pain after 6 weeks of pads and <footwear> weeks of footwear without benefit (<total> weeks) is <decision> (24 weeks)
    Given footwear_modification tried for <footwear> weeks with response none
    When the patient is triaged
    Then pulsed_radiofrequency <verdict>
    And rule PRF-OFFER <offer>
    And rule PRF-DEFERRED <deferred>

    Examples:
      | footwear | total | decision                    | verdict                                  | offer         | deferred      |
      | 17       | 23    | told PRF is deferred        | is not recommended as deferred           | does not fire | fires         |
      | 18       | 24    | offered PRF                 | is recommended as interventional         | fires         | does not fire |
      | 19       | 25    | offered PRF                 | is recommended as interventional         | fires         | does not fire |

  @boundary
  Scenario Outline: A 58-year-old with 30 weeks of pain after <n> failed adequate first-line modalities (<total> weeks) is <decision> (3 modalities)
    Given footwear_modification tried for 6 weeks with response none
    And calf_stretching tried for <stretching> weeks with response none
    When the patient is triaged
    Then pulsed_radiofrequency <verdict>
    And rule PRF-OFFER <offer>

    Examples:
      | n | stretching | total | decision             | verdict                            | offer         |
      | 2 | 5          | 12    | told PRF is deferred | is not recommended as deferred     | does not fire |
      | 3 | 6          | 18    | offered PRF          | is recommended as interventional   | fires         |
      | 3 | 7          | 19    | offered PRF          | is recommended as interventional   | fires         |

  Scenario: A 58-year-old with 30 weeks of pain after 12 weeks over 2 failed modalities is told how far PRF is
    Given footwear_modification tried for 6 weeks with response none
    When the patient is triaged
    Then pulsed_radiofrequency is not recommended as deferred because "pain is not recalcitrant: 12 weeks over 2 failed adequate first-line trials"
    And pulsed_radiofrequency is not recommended as deferred because "considered from 24 weeks or 3 modalities of failed conservative care, with persistent pain"

  Scenario: PRF offered to a 58-year-old with 30 weeks of pain after 24 weeks of failed first-line care carries SORT C, very low evidence from one case report
    Given footwear_modification tried for 18 weeks with response none
    When the patient is triaged
    Then pulsed_radiofrequency is recommended as interventional
    And the strength of pulsed_radiofrequency is "may be considered"
    And the evidence for pulsed_radiofrequency is SORT C with very_low certainty
    And the evidence for pulsed_radiofrequency cites prf-2018
    And the details of pulsed_radiofrequency mention "ultrasound-guided pulsed radiofrequency of the posterior tibial nerve"
    And the rationale of pulsed_radiofrequency mentions "recalcitrant pain: 24 weeks over 2 failed adequate first-line trials"
    And the rationale of pulsed_radiofrequency mentions "single case report"

  # ---------------------------------------------------------------- PRF already tried

  @boundary
  Scenario Outline: A 58-year-old with recalcitrant pain who had PRF <prf> weeks ago without benefit is <decision> (judged at 6 weeks)
    Given footwear_modification tried for 18 weeks with response none
    And pulsed_radiofrequency tried for <prf> weeks with response none
    When the patient is triaged
    Then pulsed_radiofrequency <verdict>
    And rule PRF-TRIED-NO-BENEFIT <judged>
    And rule PRF-OFFER <offer>

    Examples:
      | prf | decision              | verdict                                                                                            | judged        | offer         |
      | 5   | offered PRF           | is recommended as interventional                                                                   | does not fire | fires         |
      | 6   | not offered it again  | is not recommended as not_indicated because "already tried 6 weeks, response none: not repeated"   | fires         | does not fire |
      | 7   | not offered it again  | is not recommended as not_indicated because "already tried 7 weeks, response none: not repeated"   | fires         | does not fire |

  Scenario Outline: A 58-year-old with recalcitrant pain whose PRF <what> is not offered it again
    Given footwear_modification tried for 18 weeks with response none
    And pulsed_radiofrequency tried for 2 weeks with response <response>
    When the patient is triaged
    Then pulsed_radiofrequency is not recommended as not_indicated because "response <response>: not repeated"
    And rule PRF-TRIED fires
    And rule PRF-OFFER does not fire

    Examples:
      | what                | response      |
      | made the pain worse | worsened      |
      | was not tolerated   | not_tolerated |

  Scenario: A 58-year-old with recalcitrant pain and a partial response to PRF 8 weeks ago may be offered it again
    Given footwear_modification tried for 18 weeks with response none
    And pulsed_radiofrequency tried for 8 weeks with response partial
    When the patient is triaged
    Then pulsed_radiofrequency is recommended as interventional
    And rule PRF-TRIED does not fire
    And rule PRF-TRIED-NO-BENEFIT does not fire
