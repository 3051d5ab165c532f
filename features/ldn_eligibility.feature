@escalation @ldn
Feature: Who may be offered low-dose naltrexone: age, possible pregnancy, a trial under way, opioids typed as brand names
  Naltrexone has no safety or efficacy data in children, is a caution in pregnancy, and is
  contraindicated with any opioid however the clinic types its name (rule set 1.1.0).

  Background:
    Given a 40-year-old female with 20 weeks of forefoot pain
    And neuropathic features burning, tingling, numbness, electric_shocks
    And metatarsal_pad tried for 8 weeks with response none

  Scenario Outline: A <age>-year-old with persistent neuropathic forefoot pain: LDN <outcome>
    Given the patient is aged <age>
    And the patient is not_pregnant
    When the patient is triaged
    Then rule LDN-CHILD <child>
    And rule LDN-OFFER <offer>

    Examples:
      | age | outcome                          | child         | offer         |
      | 15  | is not offered under 18          | fires         | does not fire |
      | 17  | is not offered under 18          | fires         | does not fire |
      | 18  | may be considered from 18        | does not fire | fires         |
      | 40  | may be considered                | does not fire | fires         |

  Scenario: A 16-year-old is told why LDN is not offered
    Given the patient is aged 16
    When the patient is triaged
    Then low_dose_naltrexone is not recommended as not_indicated because "not established under 18"

  Scenario: A 40-year-old woman without a recorded pregnancy status has pregnancy listed as unknown before LDN
    When the patient is triaged
    Then low_dose_naltrexone is recommended as adjunct
    And rule LDN-PREGNANCY-UNKNOWN fires
    And pregnancy is listed as unknown

  Scenario Outline: No pregnancy unknown for <who>
    Given <given>
    When the patient is triaged
    Then rule LDN-PREGNANCY-UNKNOWN does not fire
    And pregnancy is not listed as unknown

    Examples:
      | who                             | given                        |
      | a woman recorded not pregnant   | the patient is not_pregnant  |
      | a 60-year-old                   | the patient is aged 60       |
      | a man                           | the patient is male          |

  Scenario: A patient already taking LDN for 4 weeks with a partial response is told to continue to the 12-week judge point
    Given low_dose_naltrexone tried for 4 weeks with response partial
    When the patient is triaged
    Then low_dose_naltrexone is recommended as adjunct
    And the rationale of low_dose_naltrexone mentions "LDN taken 4 weeks (response so far partial): continue the titration; judge benefit at about 12 weeks"
    And rule LDN-IN-PROGRESS fires
    And rule LDN-CONTINUE fires
    And the review of low_dose_naltrexone is at 8 weeks

  Scenario: A patient who stopped LDN after it made the pain worse has no LDN trial in progress
    Given low_dose_naltrexone tried for 3 weeks with response worsened
    When the patient is triaged
    Then rule LDN-IN-PROGRESS does not fire
    And low_dose_naltrexone is not recommended as not_indicated because "not repeated"

  Scenario Outline: An opioid typed as "<name>" contraindicates LDN
    Given medication "<name>"
    When the patient is triaged
    Then low_dose_naltrexone is not recommended as contraindicated
    And rule LDN-CI-OPIOID fires

    Examples:
      | name          |
      | Tylenol #3    |
      | tylenol-3     |
      | MS Contin 30mg |
      | co-codamol 30/500 |
