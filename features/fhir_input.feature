@fhir
Feature: FHIR input as EHRs code it
  A chart arrives as a FHIR R4 Bundle coded the way EHRs code it: ICD-10-CM and SNOMED CT
  problems, RxNorm medications with their dates and statuses, CPT and HCPCS procedures, partial
  dates, and searches that sometimes fail. Every code is read from the reviewed mapping table
  (rules/fhir_map.toml); an unknown is never read as a negative: a failed search is not "none",
  a stopped opioid still counts while it is recent, and a drug the table cannot name is still
  passed on for the rule set to classify.

  Background:
    Given the FHIR example patient "neuropathic-persistent"

  Scenario: The FHIR example patient is offered LDN when nothing in the chart stops it
    When the Bundle is triaged
    Then low_dose_naltrexone is recommended as adjunct

  Scenario: A patient whose chart codes opioid dependence in SNOMED CT is not offered LDN
    Given the chart has a condition coded 75544000 in SNOMED CT
    When the Bundle is triaged
    Then low_dose_naltrexone is not recommended as contraindicated because "opioid use disorder"

  Scenario: A patient whose chart codes opioid dependence in ICD-10-CM is not offered LDN
    Given the chart has a condition coded F11.20 in ICD-10-CM
    When the Bundle is triaged
    Then low_dose_naltrexone is not recommended as contraindicated because "opioid use disorder"

  Scenario: Z79.891 long-term opiate use is opioid exposure, whatever the medication list says
    Given the chart has a condition coded Z79.891 in ICD-10-CM
    When the Bundle is triaged
    Then low_dose_naltrexone is not recommended as contraindicated because "long-term"

  Scenario: A tramadol prescription stopped two days ago still contraindicates LDN
    Given a MedicationStatement for "tramadol hydrochloride 50 MG Oral Tablet" (RxNorm 835603) stopped 2 days ago
    When the Bundle is triaged
    Then low_dose_naltrexone is not recommended as contraindicated because "tramadol"

  Scenario: A tramadol prescription stopped thirty days ago no longer contraindicates LDN
    Given a MedicationStatement for "tramadol hydrochloride 50 MG Oral Tablet" (RxNorm 835603) stopped 30 days ago
    When the Bundle is triaged
    Then low_dose_naltrexone is not withheld as contraindicated

  Scenario: An opioid coded only by its RxNorm code is still an opioid
    Given a MedicationStatement coded only RxNorm 7804
    When the Bundle is triaged
    Then low_dose_naltrexone is not recommended as contraindicated because "7804"

  Scenario: A failed medication search is not read as no medications
    Given the medication search failed
    When the Bundle is triaged
    Then low_dose_naltrexone is not recommended
    And the unknowns say "the medication search failed (OperationOutcome): medications unknown"

  Scenario: Acute hepatitis C coded in ICD-10-CM stops LDN
    Given the chart has a condition coded B17.10 in ICD-10-CM
    When the Bundle is triaged
    Then low_dose_naltrexone is not recommended as contraindicated because "acute hepatitis"

  Scenario: Viral hepatitis C not said to be acute or chronic is read as the hard stop
    Given the chart has a condition coded B19.20 in ICD-10-CM
    When the Bundle is triaged
    Then low_dose_naltrexone is not recommended as contraindicated because "acute hepatitis"

  Scenario: Chronic hepatitis C keeps LDN offered with the liver caution
    Given the chart has a condition coded B18.2 in ICD-10-CM
    When the Bundle is triaged
    Then low_dose_naltrexone is recommended as adjunct
    And the details of low_dose_naltrexone mention "check liver function"

  Scenario: A diabetic foot ulcer is an urgent referral that suppresses escalation
    Given the chart has a condition coded E11.621 in ICD-10-CM
    When the Bundle is triaged
    Then urgent_referral is recommended
    And the red flags are foot_ulcer
    And no escalation is recommended

  Scenario: Diabetic gangrene is critical limb ischaemia
    Given the chart has a condition coded E11.52 in ICD-10-CM
    When the Bundle is triaged
    Then the red flags are critical_ischemia
    And urgent_referral is recommended

  Scenario: Osteomyelitis coded in SNOMED CT is a suspected infection
    Given the chart has a condition coded 60168000 in SNOMED CT
    When the Bundle is triaged
    Then the red flags are suspected_infection

  Scenario: A hammer toe code does not say whether a tendon transfer fits
    Given the chart has a condition coded M20.41 in ICD-10-CM
    When the Bundle is triaged
    Then tendon_transfer is not recommended
    And the unknowns say "a hammer toe is coded, but the code does not say whether it is flexible or rigid"
