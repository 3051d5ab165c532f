@examples
Feature: The shared example patients
  The five patients of ../shared/examples/ are the contract's worked examples (issues 2 and 3,
  "Done when"). Each must triage to what a clinician expects, with evidence on every graded
  recommendation, the same JSON every time, and a result that does not depend on the order of
  the lists in the input.

  Scenario Outline: The <name> example is triaged with graded evidence whose citations resolve
    Given the example patient "<name>"
    When the patient is triaged
    Then every graded recommendation carries a SORT grade, a GRADE certainty and citations that resolve
    And no intervention is both recommended and not recommended

    Examples:
      | name                   |
      | neuropathic-persistent |
      | new-onset              |
      | opioid-user            |
      | red-flag-charcot       |
      | rheumatoid             |

  Scenario Outline: The <name> example gives byte-identical JSON twice and the same result with its lists reversed
    Given the example patient "<name>"
    When the patient is triaged
    Then triaging it again with a fresh triager gives byte-identical JSON
    And triaging it with every list reversed gives byte-identical JSON

    Examples:
      | name                   |
      | neuropathic-persistent |
      | new-onset              |
      | opioid-user            |
      | red-flag-charcot       |
      | rheumatoid             |

  Scenario: The 54-year-old with 16 weeks of burning forefoot pain (DN4 4/10) after 8 weeks of pads is offered LDN as an adjunct with SORT C and the regimen
    Given the example patient "neuropathic-persistent"
    When the patient is triaged
    Then low_dose_naltrexone is recommended as adjunct
    And the strength of low_dose_naltrexone is "may be considered"
    And the evidence for low_dose_naltrexone is SORT C with very_low certainty
    And the evidence for low_dose_naltrexone cites younger-2013
    And the details of low_dose_naltrexone mention "start 1.5 mg orally at bedtime"
    And the details of low_dose_naltrexone mention "to 4.5 mg"
    And the details of low_dose_naltrexone mention "compounding pharmacy"
    And the details of low_dose_naltrexone mention "off-label"
    And the rationale of low_dose_naltrexone mentions "no study of LDN in metatarsalgia"
    And rule LDN-OFFER fires
    And rule PERSISTENT fires
    And rule DN4-PHENOTYPE fires

  Scenario: The 54-year-old with 26 weeks over 3 failed modalities and tight calves after 6 weeks of stretching is offered PRF and a gastrocnemius recession referral
    Given the example patient "neuropathic-persistent"
    When the patient is triaged
    Then pulsed_radiofrequency is recommended as interventional
    And gastrocnemius_recession is recommended as surgical_referral
    And metatarsal_pad is not recommended as not_indicated because "not simply repeated"
    And footwear_modification is recommended as first_line
    And the details of footwear_modification mention "partial response: continue and optimise"
    And weight_management is recommended as first_line

  Scenario: The 61-year-old taking tramadol with 30 weeks of neuropathic pain is told LDN is contraindicated, and why
    Given the example patient "opioid-user"
    When the patient is triaged
    Then low_dose_naltrexone is not recommended as contraindicated because "tramadol is an opioid; naltrexone blocks opioid analgesia and can precipitate withdrawal"
    And rule OPIOID-MEDICATION fires
    And rule LDN-CI-OPIOID fires
    And rule LDN-OFFER does not fire
    And pulsed_radiofrequency is recommended as interventional
    And insoles is not recommended as not_indicated because "no rheumatoid arthritis recorded"
    And the first-line plan has footwear_modification, activity_modification

  Scenario: The 67-year-old with suspected Charcot neuroarthropathy is referred urgently and every escalation is suppressed
    Given the example patient "red-flag-charcot"
    When the patient is triaged
    Then urgent_referral is recommended as urgent_referral
    And the red flags are suspected_charcot
    And no escalation is recommended
    And low_dose_naltrexone is not recommended as suppressed because "suspected Charcot neuroarthropathy"
    And pulsed_radiofrequency is not recommended as suppressed because "suspected Charcot neuroarthropathy"
    And gastrocnemius_recession is not recommended as suppressed because "suspected Charcot neuroarthropathy"
    And plantar_plate_repair is not recommended as suppressed because "suspected Charcot neuroarthropathy"
    And tendon_transfer is not recommended as suppressed because "suspected Charcot neuroarthropathy"
    And footwear_modification is recommended as first_line
    And metatarsal_pad is not recommended as suppressed
    And rule RF-URGENT fires
    And rule RF-SUPPRESS-ESCALATION fires

  Scenario: The 47-year-old with rheumatoid arthritis and 10 weeks of forefoot pain is offered simple insoles with the rheumatoid arthritis evidence
    Given the example patient "rheumatoid"
    When the patient is triaged
    Then insoles is recommended as first_line
    And the evidence for insoles is SORT B with low certainty
    And the evidence for insoles cites bartolo-2022
    And the evidence for insoles cites chalmers-2000
    And the evidence for insoles cites mejjad-2004
    And the rationale of insoles mentions "rheumatoid arthritis"
    And rule FL-INSOLES fires
    And low_dose_naltrexone is not recommended as deferred because "pain 10 weeks"
    And no escalation is recommended

  Scenario: The 38-year-old with 3 weeks of new forefoot pain and plantar callus gets first-line care only, with escalation deferred
    Given the example patient "new-onset"
    When the patient is triaged
    Then footwear_modification is recommended as first_line
    And metatarsal_pad is recommended as first_line
    And activity_modification is recommended as first_line
    And callus_debridement is recommended as first_line
    And weight_management is not mentioned
    And no escalation is recommended
    And low_dose_naltrexone is not recommended as deferred because "pain 3 weeks"
    And pulsed_radiofrequency is not recommended as deferred because "pain is not recalcitrant"
    And rule FL-CALLUS fires
    And rule FL-WEIGHT does not fire
    And rule BMI-DERIVE fires
