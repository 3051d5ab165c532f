@escalation @surgical
Feature: Surgical referral
  Surgical referral is considered only when the pain is recalcitrant and no red flag is present
  (CLINICAL.md section 5, Besse 2017): gastrocnemius recession for gastrocnemius tightness once
  calf stretching has given no benefit in an adequate 6-week trial or has made the pain worse (a
  partial response means keep stretching), plantar plate repair for plantar plate instability,
  and tendon transfer for a flexible lesser-toe deformity. Without the finding the procedure is
  not indicated; with the finding but pain that is not yet recalcitrant it is deferred.

  Background:
    Given a 60-year-old female with 30 weeks of forefoot pain
    And metatarsal_pad tried for 12 weeks with response none

  Scenario Outline: A 60-year-old with 30 weeks of recalcitrant pain (24 weeks of failed pads and footwear) and <text> is referred to consider <procedure>
    Given footwear_modification tried for 12 weeks with response none
    And the examination finds <finding>
    When the patient is triaged
    Then <procedure> is recommended as surgical_referral
    And the strength of <procedure> is "refer for a surgical opinion"
    And the evidence for <procedure> is SORT C with very_low certainty
    And the evidence for <procedure> cites besse-2017
    And the rationale of <procedure> mentions "<text> on examination"
    And rule <offer> fires
    And rule <no_finding> does not fire
    And rule <deferred> does not fire

    Examples:
      | finding                   | text                          | procedure            | offer        | no_finding              | deferred                |
      | plantar_plate_instability | plantar plate instability     | plantar_plate_repair | SURG-PLATE   | SURG-PLATE-NO-FINDING   | SURG-PLATE-DEFERRED     |
      | flexible_toe_deformity    | flexible lesser-toe deformity | tendon_transfer      | SURG-TENDON  | SURG-TENDON-NO-FINDING  | SURG-TENDON-DEFERRED    |

  Scenario: A 60-year-old with recalcitrant pain, tight calves and 8 weeks of calf stretching without benefit is referred to consider gastrocnemius recession
    Given footwear_modification tried for 12 weeks with response none
    And the examination finds gastrocnemius_tightness
    And calf_stretching tried for 8 weeks with response none
    When the patient is triaged
    Then gastrocnemius_recession is recommended as surgical_referral
    And the rationale of gastrocnemius_recession mentions "calf stretching tried 8 weeks without benefit (response none)"
    And the evidence for gastrocnemius_recession cites gastrocnemius-release-2016
    And rule SURG-GASTROC fires
    And rule SURG-GASTROC-STRETCH-FIRST does not fire
    And rule SURG-GASTROC-DEFERRED does not fire
    And rule SURG-GASTROC-NO-FINDING does not fire

  @boundary
  Scenario Outline: A 60-year-old with recalcitrant pain and tight calves after <weeks> weeks of calf stretching with response <response> is <decision> (adequate trial 6 weeks)
    Given footwear_modification tried for 12 weeks with response none
    And the examination finds gastrocnemius_tightness
    And calf_stretching tried for <weeks> weeks with response <response>
    When the patient is triaged
    Then gastrocnemius_recession <verdict>
    And rule SURG-GASTROC <offer>
    And rule SURG-GASTROC-STRETCH-FIRST <stretch_first>

    Examples:
      | weeks | response | decision                          | verdict                                                                    | offer         | stretch_first |
      | 5     | none     | told to stretch first             | is not recommended as deferred because "calf stretching: tried 5 weeks so far: continue to an adequate trial" | does not fire | fires         |
      | 6     | none     | referred for gastrocnemius recession | is recommended as surgical_referral                                     | fires         | does not fire |
      | 7     | none     | referred for gastrocnemius recession | is recommended as surgical_referral                                     | fires         | does not fire |
      | 8     | worsened | referred for gastrocnemius recession | is recommended as surgical_referral                                     | fires         | does not fire |
      | 8     | partial  | told to keep stretching           | is not recommended as deferred because "calf stretching: partial response: keep stretching"        | does not fire | fires         |

  Scenario: A 60-year-old with recalcitrant pain whose calf stretching made the pain worse after 2 weeks is referred, and the rationale says so rather than claiming an adequate trial
    Given footwear_modification tried for 12 weeks with response none
    And the examination finds gastrocnemius_tightness
    And calf_stretching tried for 2 weeks with response worsened
    When the patient is triaged
    Then gastrocnemius_recession is recommended as surgical_referral
    And the rationale of gastrocnemius_recession mentions "calf stretching tried 2 weeks without benefit (response worsened)"
    And calf_stretching is not recommended as not_indicated because "pain worsened with it: not repeated"

  Scenario: A 60-year-old with recalcitrant pain and tight calves who has not tried calf stretching is told to stretch first
    Given footwear_modification tried for 12 weeks with response none
    And the examination finds gastrocnemius_tightness
    When the patient is triaged
    Then gastrocnemius_recession is not recommended as deferred because "referral needs an adequate trial of calf stretching (at least 6 weeks) without benefit; calf stretching: not tried yet"
    And calf_stretching is recommended as first_line
    And rule SURG-GASTROC-STRETCH-FIRST fires
    And rule SURG-GASTROC does not fire

  # ---------------------------------------------------------------- not indicated: no finding

  Scenario Outline: A 60-year-old with recalcitrant pain but no <text> on examination is told <procedure> is not indicated
    Given footwear_modification tried for 12 weeks with response none
    And calf_stretching tried for 8 weeks with response none
    When the patient is triaged
    Then <procedure> is not recommended as not_indicated because "no <text> recorded on examination"
    And rule <no_finding> fires
    And rule <offer> does not fire
    And rule <deferred> does not fire

    Examples:
      | procedure               | text                          | offer        | no_finding              | deferred              |
      | gastrocnemius_recession | gastrocnemius tightness       | SURG-GASTROC | SURG-GASTROC-NO-FINDING | SURG-GASTROC-DEFERRED |
      | plantar_plate_repair    | plantar plate instability     | SURG-PLATE   | SURG-PLATE-NO-FINDING   | SURG-PLATE-DEFERRED   |
      | tendon_transfer         | flexible lesser-toe deformity | SURG-TENDON  | SURG-TENDON-NO-FINDING  | SURG-TENDON-DEFERRED  |

  Scenario: A 60-year-old with recalcitrant pain and a rigid, not flexible, toe deformity is not referred for tendon transfer
    Given footwear_modification tried for 12 weeks with response none
    And the examination finds rigid_toe_deformity
    When the patient is triaged
    Then tendon_transfer is not recommended as not_indicated because "no flexible lesser-toe deformity recorded on examination"
    And rule SURG-TENDON does not fire

  Scenario: A 60-year-old with no gastrocnemius tightness is not told to stretch first before a recession nobody is considering
    Given footwear_modification tried for 12 weeks with response none
    When the patient is triaged
    Then rule SURG-GASTROC-STRETCH-FIRST does not fire
    And gastrocnemius_recession is not withheld as deferred

  # ---------------------------------------------------------------- deferred: not yet recalcitrant

  Scenario Outline: A 60-year-old with <text> but only 12 weeks of failed pads (persistent, not recalcitrant) is told <procedure> is deferred
    Given the examination finds <finding>
    And calf_stretching tried for 4 weeks with response none
    When the patient is triaged
    Then <procedure> is not recommended as deferred because "<text> is present but pain is not recalcitrant"
    And rule <deferred> fires
    And rule <offer> does not fire
    And rule <no_finding> does not fire

    Examples:
      | finding                   | text                          | procedure               | offer        | no_finding              | deferred              |
      | gastrocnemius_tightness   | gastrocnemius tightness       | gastrocnemius_recession | SURG-GASTROC | SURG-GASTROC-NO-FINDING | SURG-GASTROC-DEFERRED |
      | plantar_plate_instability | plantar plate instability     | plantar_plate_repair    | SURG-PLATE   | SURG-PLATE-NO-FINDING   | SURG-PLATE-DEFERRED   |
      | flexible_toe_deformity    | flexible lesser-toe deformity | tendon_transfer         | SURG-TENDON  | SURG-TENDON-NO-FINDING  | SURG-TENDON-DEFERRED  |

  @boundary
  Scenario Outline: A 60-year-old with plantar plate instability after 12 weeks of pads and <footwear> weeks of footwear without benefit (<total> weeks) is <decision> (recalcitrant from 24 weeks)
    Given footwear_modification tried for <footwear> weeks with response none
    And the examination finds plantar_plate_instability
    When the patient is triaged
    Then plantar_plate_repair <verdict>
    And rule SURG-PLATE <offer>
    And rule SURG-PLATE-DEFERRED <deferred>

    Examples:
      | footwear | total | decision                               | verdict                             | offer         | deferred      |
      | 11       | 23    | told plantar plate repair is deferred  | is not recommended as deferred      | does not fire | fires         |
      | 12       | 24    | referred for plantar plate repair      | is recommended as surgical_referral | fires         | does not fire |
      | 13       | 25    | referred for plantar plate repair      | is recommended as surgical_referral | fires         | does not fire |
