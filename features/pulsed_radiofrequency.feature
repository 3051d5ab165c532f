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
  Scenario Outline: A 58-year-old with recalcitrant pain who had PRF <prf> weeks ago without benefit is <decision> (judged at 12 weeks)
    Given footwear_modification tried for 18 weeks with response none
    And pulsed_radiofrequency tried for <prf> weeks with response none
    When the patient is triaged
    Then pulsed_radiofrequency <verdict>
    And rule PRF-TRIED-NO-BENEFIT <judged>
    And rule PRF-DONE-RECENT <recent>
    And rule PRF-OFFER does not fire

    Examples:
      | prf  | decision                           | verdict                                                                                             | judged        | recent        |
      | 2    | told to judge its effect first     | is not recommended as deferred because "done 2 weeks ago (response so far none): judge the effect at 12 weeks (3 months)" | does not fire | fires |
      | 11.9 | told to judge its effect first     | is not recommended as deferred because "judge the effect at 12 weeks"                               | does not fire | fires         |
      | 12   | not offered it again               | is not recommended as not_indicated because "done 12 weeks ago without benefit (response none): not repeated" | fires | does not fire |
      | 13   | not offered it again               | is not recommended as not_indicated because "not repeated"                                          | fires         | does not fire |

  Scenario Outline: A 58-year-old with recalcitrant pain whose PRF <what> is not offered it again
    Given footwear_modification tried for 18 weeks with response none
    And pulsed_radiofrequency tried for 2 weeks with response <response>
    When the patient is triaged
    Then pulsed_radiofrequency is not recommended as not_indicated because "response <response>: not repeated"
    And rule PRF-TRIED fires
    And rule PRF-OFFER does not fire
    And rule PRF-DONE-RECENT does not fire

    Examples:
      | what                | response      |
      | made the pain worse | worsened      |
      | was not tolerated   | not_tolerated |

  @boundary
  Scenario Outline: A 58-year-old with recalcitrant pain whose PRF <prf> weeks ago helped (<response>) is <decision>
    Given footwear_modification tried for 18 weeks with response none
    And pulsed_radiofrequency tried for <prf> weeks with response <response>
    When the patient is triaged
    Then pulsed_radiofrequency <verdict>
    And rule PRF-REPEAT <repeat>
    And rule PRF-OFFER does not fire
    And rule PRF-TRIED does not fire

    Examples:
      | prf  | response | decision                                   | verdict                                      | repeat        |
      | 8    | partial  | told to judge its effect at 3 months first | is not recommended as deferred               | does not fire |
      | 12   | partial  | told it may be considered again            | is recommended as interventional             | fires         |
      | 20   | resolved | told it may be considered again            | is recommended as interventional             | fires         |

  Scenario: A 58-year-old whose PRF 20 weeks ago helped and whose pain is back is told why it may be considered again, with the 3-month review
    Given footwear_modification tried for 18 weeks with response none
    And pulsed_radiofrequency tried for 20 weeks with response resolved
    When the patient is triaged
    Then the rationale of pulsed_radiofrequency mentions "the benefit has faded: it may be considered again"
    And the review of pulsed_radiofrequency is at 12 weeks

  Scenario: A 58-year-old with 30 weeks of pain after 12 weeks over 2 failed modalities and PRF done 20 weeks ago with benefit is not offered it again: the pain is not recalcitrant
    Given footwear_modification tried for 6 weeks with response none
    And pulsed_radiofrequency tried for 20 weeks with response partial
    When the patient is triaged
    Then pulsed_radiofrequency is not recommended as deferred because "pain is not recalcitrant"
    And rule PRF-REPEAT does not fire
