@escalation @changes
Feature: What would change a withheld escalation
  For each escalation that is not recommended (LDN, pulsed radiofrequency, a surgical referral),
  the nearest changes of the patient's facts after which the engine recommends it: the fewest
  changes, then the soonest. Only facts that can change are changed: time passing, a trial's
  outcome, the DN4, a drug stopped or confirmed not to be an opioid, an examination finding, a part
  of the record retrieved. Age, a red flag, a condition such as liver failure or a past
  procedure's outcome never are: where only they hold an option back, the answer says that no
  change within the pathway makes it an option. Every answer is checked by applying it to the
  patient and running the engine again.

  Scenario: A 38-year-old with 3 weeks of pain is told LDN becomes an option from 12 weeks of pain if the pad trial fails
    Given a 38-year-old male with 3 weeks of forefoot pain
    And neuropathic features burning, tingling, numbness, electric_shocks
    When the patient is triaged with what would change
    Then low_dose_naltrexone is not recommended as deferred
    And the nearest change for low_dose_naltrexone is "pain reaches 12 weeks (in 9 weeks) and a metatarsal pad trial started now fails"
    And every change for low_dose_naltrexone, applied to the patient, makes it recommended

  Scenario: A 61-year-old taking tramadol is told LDN is an option after tramadol has been stopped for 10 days
    Given the example patient "opioid-user"
    When the patient is triaged with what would change
    Then low_dose_naltrexone is not recommended as contraindicated
    And the nearest change for low_dose_naltrexone is "tramadol has been stopped for 10 days (the label: 7-10 opioid-free days)"
    And every change for low_dose_naltrexone, applied to the patient, makes it recommended

  Scenario: A 54-year-old with persistent burning pain is told plantar plate repair is an option if plantar plate instability is found on examination
    Given the example patient "neuropathic-persistent"
    When the patient is triaged with what would change
    Then plantar_plate_repair is not recommended as not_indicated
    And the nearest change for plantar_plate_repair is "plantar plate instability is found on examination"
    And every change for plantar_plate_repair, applied to the patient, makes it recommended

  Scenario: A patient whose DN4 is 3/10 is told LDN is an option if the DN4 reaches 4/10, not if a symptom appears
    Given a 45-year-old male with 16 weeks of forefoot pain
    And neuropathic features burning, tingling, numbness
    And metatarsal_pad tried for 8 weeks with response none
    When the patient is triaged with what would change
    Then low_dose_naltrexone is not recommended as not_indicated
    And the nearest change for low_dose_naltrexone is "the DN4 reaches 4/10"
    And every change for low_dose_naltrexone, applied to the patient, makes it recommended

  Scenario: A medication the rule set does not recognise holds LDN back until it is confirmed not to be an opioid
    Given a 45-year-old male with 16 weeks of forefoot pain
    And neuropathic features burning, tingling, numbness, electric_shocks
    And metatarsal_pad tried for 8 weeks with response none
    And medication "Quixotamol"
    When the patient is triaged with what would change
    Then low_dose_naltrexone is not recommended as deferred
    And the nearest change for low_dose_naltrexone is "'Quixotamol' is confirmed not to be an opioid"
    And every change for low_dose_naltrexone, applied to the patient, makes it recommended

  Scenario: A 67-year-old with a suspected Charcot foot is told that no change within the pathway makes an escalation an option
    Given the example patient "red-flag-charcot"
    When the patient is triaged with what would change
    Then no change within the pathway makes low_dose_naltrexone an option
    And no change within the pathway makes pulsed_radiofrequency an option
    And no change within the pathway makes plantar_plate_repair an option

  Scenario: Liver failure is not a fact that changes: LDN gets no change, the surgical referral still does
    Given a 45-year-old male with 16 weeks of forefoot pain
    And neuropathic features burning, tingling, numbness, electric_shocks
    And metatarsal_pad tried for 8 weeks with response none
    And comorbidity liver_failure
    When the patient is triaged with what would change
    Then low_dose_naltrexone is not recommended as contraindicated
    And no change within the pathway makes low_dose_naltrexone an option
    And every change for tendon_transfer, applied to the patient, makes it recommended
