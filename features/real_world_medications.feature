@escalation @ldn @contraindications @real_world
Feature: Medications as clinics and EHRs write them
  Naltrexone is contraindicated with any opioid exposure, so a medication list decides whether LDN
  may be offered. Real lists carry RxNorm codes without text, UK brand and compound names,
  ingredients inside longer words, naloxone kits, drugs for opioid-induced constipation, full-dose
  naltrexone, opioids stopped a few days ago, opioid use coded as a condition, RxNorm display names
  of hundreds of characters, and searches that failed (CLINICAL.md section 3, rule set 1.2). An
  opioid in any of these forms is never offered LDN, and the reason names the drug or the code; a
  medication that cannot be classified, or a list that could not be retrieved, holds LDN back
  until someone checks: an unknown never passes as "no opioid".

  Background:
    Given a 54-year-old female with 16 weeks of forefoot pain
    And neuropathic features burning, tingling, numbness, electric_shocks
    And metatarsal_pad tried for 8 weeks with response none
    And the patient is not_pregnant

  # ---------------------------------------------------------------- opioids in every form

  Scenario Outline: A 54-year-old eligible for LDN who takes "<name>" (<what>) is told LDN is contraindicated, naming the drug
    Given medication "<name>"
    When the patient is triaged
    Then low_dose_naltrexone is not recommended as contraindicated because "opioid exposure: <name> is an opioid"
    And rule OPIOID-MEDICATION fires
    And rule LDN-CI-OPIOID fires
    And rule LDN-OFFER does not fire
    And the trace explains "contains <matched>"

    Examples:
      | name                                                | what                             | matched         |
      | Zomorph 10 mg capsules                              | a UK brand of morphine           | Zomorph         |
      | MST Continus 30mg                                   | a UK brand of morphine           | MST Continus    |
      | OxyNorm 5 mg                                        | a UK brand of oxycodone          | OxyNorm         |
      | Tramacet                                            | a UK brand of tramadol/paracetamol | Tramacet      |
      | co-dydramol 10/500                                  | a UK compound name               | co-dydramol     |
      | benzhydrocodone/APAP                                | an ingredient inside a longer word | benzhydrocodone |
      | Apadaz 6.12-325 mg                                  | a US brand in the CDC value sets | Apadaz          |
      | 24 HR tramadol hydrochloride 100 MG Extended Release Oral Capsule [ConZip] | an RxNorm display name | tramadol |

  Scenario: A 54-year-old eligible for LDN whose medication arrives as the RxNorm code 835605 alone is told LDN is contraindicated, naming the code
    Given medication coded RxNorm 835605 with no name
    When the patient is triaged
    Then low_dose_naltrexone is not recommended as contraindicated because "RxNorm 835605 is an opioid"
    And rule OPIOID-MEDICATION fires
    And the trace explains "contains RxNorm 835605"

  Scenario: A 54-year-old eligible for LDN who takes apomorphine, which holds the letters of morphine, is offered LDN
    Given medication "apomorphine"
    When the patient is triaged
    Then low_dose_naltrexone is recommended as adjunct
    And rule OPIOID-MEDICATION does not fire
    And rule MEDICATION-UNRECOGNISED does not fire
    And rule OPIOID-POSSIBLE-ANTAGONIST does not fire
    And rule OPIOID-POSSIBLE-CONSTIPATION does not fire
    And rule LDN-DEFERRED-UNRECOGNISED does not fire
    And rule LDN-DEFERRED-POSSIBLE-OPIOID does not fire

  Scenario: A medication name of 520 characters, as an RxNorm pack display runs, is triaged and its opioid found
    Given medication "{7 (norethindrone 0.5 MG / ethinyl estradiol 0.035 MG Oral Tablet) / 9 (norethindrone 1 MG / ethinyl estradiol 0.035 MG Oral Tablet) / 5 (norethindrone 0.5 MG / ethinyl estradiol 0.035 MG Oral Tablet) / 7 (inert ingredients 1 MG Oral Tablet) } Pack [Tri-Norinyl 28 Day] with acetaminophen 300 MG / codeine phosphate 30 MG Oral Tablet as needed for pain, dispensed by the community pharmacy against a paper prescription dated last month and reviewed by the practice pharmacist at the annual medication review for this patient with forefoot pain"
    When the patient is triaged
    Then low_dose_naltrexone is not recommended as contraindicated
    And rule OPIOID-MEDICATION fires

  # ---------------------------------------------------------------- stopped opioids

  @boundary
  Scenario Outline: A 54-year-old eligible for LDN whose tramadol was stopped <days> days ago <decision> (naltrexone needs 7-10 opioid-free days)
    Given medication "tramadol" stopped <days> days ago
    When the patient is triaged
    Then low_dose_naltrexone <verdict>
    And rule OPIOID-RECENTLY-STOPPED <recent>
    And rule OPIOID-STOPPED-CLEAR <clear>

    Examples:
      | days | decision                              | verdict                                                                                  | recent        | clear         |
      | 2    | is told LDN waits 8 more days         | is not recommended as contraindicated because "tramadol was stopped 2 days ago; naltrexone needs 7-10 opioid-free days: not before 8 days from now" | fires | does not fire |
      | 9    | is told LDN waits 1 more day          | is not recommended as contraindicated because "not before 1 day from now"                | fires         | does not fire |
      | 10   | may be offered LDN                    | is recommended as adjunct                                                                | does not fire | fires         |
      | 30   | may be offered LDN                    | is recommended as adjunct                                                                | does not fire | fires         |

  Scenario: A 54-year-old whose tramadol was stopped 30 days ago is offered LDN, and the opioid check says so
    Given medication "tramadol" stopped 30 days ago
    When the patient is triaged
    Then low_dose_naltrexone is recommended as adjunct
    And the rationale of low_dose_naltrexone mentions "tramadol stopped 30 days ago"
    And the details of low_dose_naltrexone mention "tramadol stopped 30 days ago"

  Scenario: A 54-year-old who stopped an unrecognised medication 3 days ago is not offered LDN until it is confirmed not to be an opioid
    Given medication "Flurbex" stopped 3 days ago
    When the patient is triaged
    Then low_dose_naltrexone is not recommended as deferred because "confirm that 'Flurbex' is not an opioid"
    And rule MEDICATION-UNRECOGNISED-STOPPED fires
    And rule MEDICATION-UNRECOGNISED does not fire

  Scenario: A 54-year-old who stopped an unrecognised medication 30 days ago may be offered LDN
    Given medication "Flurbex" stopped 30 days ago
    When the patient is triaged
    Then low_dose_naltrexone is recommended as adjunct
    And rule MEDICATION-UNRECOGNISED-STOPPED does not fire

  # ---------------------------------------------------------------- opioid use as a condition

  Scenario: A 54-year-old with long-term opiate use recorded as a condition is told LDN is contraindicated
    Given comorbidity long_term_opioid_use
    When the patient is triaged
    Then low_dose_naltrexone is not recommended as contraindicated because "long-term (current) use of opioid analgesics"
    And rule OPIOID-LONG-TERM-USE fires
    And rule OPIOID-USE-DISORDER does not fire
    And rule LDN-OFFER does not fire

  Scenario: A 54-year-old with diabetes and no opioid condition has no opioid exposure from her conditions
    Given comorbidity diabetes
    When the patient is triaged
    Then rule OPIOID-LONG-TERM-USE does not fire
    And rule OPIOID-USE-DISORDER does not fire
    And low_dose_naltrexone is recommended as adjunct

  # ---------------------------------------------------------------- possible opioid use

  Scenario Outline: A 54-year-old eligible for LDN with "<name>" on the list, <why>, is not offered LDN until current opioid use is checked
    Given medication "<name>"
    When the patient is triaged
    Then low_dose_naltrexone is not recommended as deferred because "opioids are probably in use; check current opioid use before naltrexone"
    And rule <rule> fires
    And rule LDN-DEFERRED-POSSIBLE-OPIOID fires
    And rule LDN-OFFER does not fire
    And low_dose_naltrexone is not withheld as contraindicated

    Examples:
      | name                        | why                                     | rule                          |
      | naloxone 4 mg nasal spray   | a naloxone kit on its own               | OPIOID-POSSIBLE-ANTAGONIST    |
      | Narcan                      | a naloxone kit by its brand             | OPIOID-POSSIBLE-ANTAGONIST    |
      | nalmefene                   | an opioid antagonist on its own         | OPIOID-POSSIBLE-ANTAGONIST    |
      | naloxegol 25 mg             | a drug for opioid-induced constipation  | OPIOID-POSSIBLE-CONSTIPATION  |
      | Relistor                    | methylnaltrexone, for opioid constipation | OPIOID-POSSIBLE-CONSTIPATION |
      | naldemedine                 | a drug for opioid-induced constipation  | OPIOID-POSSIBLE-CONSTIPATION  |

  Scenario: A 54-year-old with buprenorphine/naloxone is told LDN is contraindicated: naloxone in a combination is not "possible" use, it is exposure
    Given medication "buprenorphine/naloxone"
    When the patient is triaged
    Then low_dose_naltrexone is not recommended as contraindicated
    And rule OPIOID-MEDICATION fires
    And rule OPIOID-POSSIBLE-ANTAGONIST does not fire

  # ---------------------------------------------------------------- naltrexone already taken

  Scenario Outline: A 54-year-old already taking "<name>", full-dose naltrexone, is told LDN is not indicated and to ask the prescriber
    Given medication "<name>"
    When the patient is triaged
    Then low_dose_naltrexone is not recommended as not_indicated because "already taking naltrexone at full dose"
    And low_dose_naltrexone is not recommended as not_indicated because "ask the prescriber"
    And rule LDN-NOT-INDICATED-NALTREXONE fires
    And rule LDN-OFFER does not fire

    Examples:
      | name              |
      | naltrexone 50 mg  |
      | Revia             |
      | Vivitrol          |
      | Contrave          |

  Scenario: A 54-year-old with "naltrexone" on the list and no dose is not offered LDN until the dose is confirmed
    Given medication "naltrexone"
    When the patient is triaged
    Then low_dose_naltrexone is not recommended as deferred because "the naltrexone dose is not stated"
    And rule LDN-DEFERRED-NALTREXONE-DOSE fires
    And rule LDN-NOT-INDICATED-NALTREXONE does not fire

  Scenario: A 54-year-old with "LDN 4.5 mg at night" on the list is told to continue the titration, not to start it
    Given medication "LDN 4.5 mg at night"
    When the patient is triaged
    Then low_dose_naltrexone is recommended as adjunct
    And the rationale of low_dose_naltrexone mentions "already taking LDN (LDN 4.5 mg at night): continue the titration"
    And no result says "start 1.5 mg"
    And rule LDN-IN-PROGRESS-MEDICATION fires
    And rule LDN-CONTINUE fires
    And rule LDN-OFFER does not fire
    And rule LDN-DEFERRED-NALTREXONE-DOSE does not fire
    And rule LDN-NOT-INDICATED-NALTREXONE does not fire

  Scenario: A 54-year-old eligible for LDN with no naltrexone on the list has no naltrexone in progress
    Given medication "sertraline"
    When the patient is triaged
    Then rule LDN-IN-PROGRESS-MEDICATION does not fire
    And rule LDN-CONTINUE does not fire
    And rule LDN-OFFER fires

  # ---------------------------------------------------------------- unrecognised medications

  Scenario: A 54-year-old eligible for LDN whose list holds an unrecognised medication is not offered LDN, and nothing says "no opioid exposure"
    Given medication "sertraline"
    And medication "Quixotamol 20 mg"
    When the patient is triaged
    Then low_dose_naltrexone is not recommended as deferred because "confirm that 'Quixotamol 20 mg' is not an opioid"
    And rule LDN-DEFERRED-UNRECOGNISED fires
    And no result says "no opioid exposure"

  Scenario: A 54-year-old eligible for LDN whose list holds only recognised non-opioids is offered LDN
    Given medication "sertraline"
    And medication "atorvastatin 20 mg"
    And medication "Ventolin inhaler"
    When the patient is triaged
    Then low_dose_naltrexone is recommended as adjunct
    And rule LDN-DEFERRED-UNRECOGNISED does not fire
    And rule MEDICATION-UNRECOGNISED does not fire

  # ---------------------------------------------------------------- what the record could not give

  Scenario Outline: A 54-year-old eligible for LDN whose <section> could not be retrieved is not offered LDN until it is checked: a failed search is not "none"
    Given the record could not retrieve <section>
    When the patient is triaged
    Then low_dose_naltrexone is not recommended as deferred because "<reason>"
    And record:<section> is listed as unknown
    And rule RECORD-GAP fires
    And rule LDN-DEFERRED-NOT-RETRIEVED fires
    And rule LDN-OFFER does not fire

    Examples:
      | section       | reason                                                                   |
      | medications   | the medication list could not be retrieved: confirm no opioid use        |
      | comorbidities | the conditions could not be retrieved: confirm no opioid dependence      |

  Scenario: A 54-year-old eligible for LDN whose record was retrieved in full may be offered LDN
    When the patient is triaged
    Then rule RECORD-GAP does not fire
    And rule LDN-DEFERRED-NOT-RETRIEVED does not fire
    And rule RECORD-GAP-RED-FLAGS does not fire
    And rule SURG-EXAM-NOT-RETRIEVED does not fire
    And low_dose_naltrexone is recommended as adjunct

  Scenario: A 54-year-old eligible for LDN whose red flags could not be retrieved is offered no escalation until someone confirms there is none
    Given the record could not retrieve red_flags
    When the patient is triaged
    Then low_dose_naltrexone is not recommended as deferred because "confirm there is no red flag"
    And pulsed_radiofrequency is not recommended as deferred because "confirm there is no red flag"
    And no escalation is recommended
    And rule RECORD-GAP-RED-FLAGS fires
    And the first-line plan has footwear_modification, activity_modification

  Scenario: A 54-year-old whose examination findings could not be retrieved is told to examine before any surgical decision, not that no finding was recorded
    Given the record could not retrieve exam_findings
    When the patient is triaged
    Then gastrocnemius_recession is not recommended as deferred because "the examination findings could not be retrieved"
    And plantar_plate_repair is not withheld as not_indicated
    And rule SURG-EXAM-NOT-RETRIEVED fires
    And rule SURG-PLATE-NO-FINDING does not fire

  Scenario: A 54-year-old whose DN4 could not be retrieved has the DN4 as unknown, not 0/10
    Given no neuropathic features are listed
    And the record could not retrieve pain.neuropathic_features
    When the patient is triaged
    Then dn4 is listed as unknown
    And rule DN4-UNKNOWN fires
    And rule DN4-SCORE does not fire
