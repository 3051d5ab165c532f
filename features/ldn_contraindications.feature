@escalation @ldn @contraindications
Feature: LDN contraindications and cautions
  Naltrexone blocks opioid analgesia and can precipitate withdrawal, so any opioid exposure
  contraindicates LDN: an opioid agonist or partial agonist typed by generic or brand name in any
  letter case, combination products, extended-release forms, methadone or buprenorphine, and
  opioid use disorder. Acute hepatitis and liver failure are a hard stop in this rule set; other
  hepatic impairment, pregnancy and breastfeeding are cautions that keep LDN offered with the
  caution stated (CLINICAL.md section 4, EVIDENCE.md "Naltrexone label"). A medication name the
  drug vocabulary does not know is listed as unknown, never assumed safe. A contraindication is
  never hidden behind a deferral or any other reason.

  Scenario Outline: A 54-year-old eligible for LDN but taking "<name>" is told LDN is contraindicated because of opioid exposure
    Given a 54-year-old female with 16 weeks of forefoot pain
    And neuropathic features burning, tingling, numbness, electric_shocks
    And metatarsal_pad tried for 8 weeks with response none
    And medication "<name>"
    When the patient is triaged
    Then low_dose_naltrexone is not recommended as contraindicated because "opioid exposure: <name> is an opioid"
    And low_dose_naltrexone is not recommended as contraindicated because "naltrexone blocks opioid analgesia and can precipitate withdrawal"
    And rule OPIOID-MEDICATION fires
    And rule LDN-CI-OPIOID fires
    And rule LDN-OFFER does not fire
    And the trace explains "contains <matched>"

    Examples:
      | name                             | matched        |
      | tramadol                         | tramadol       |
      | TRAMADOL                         | tramadol       |
      | Tramadol 50 mg                   | tramadol       |
      | Oxycodone                        | oxycodone      |
      | oxycodone/acetaminophen          | oxycodone      |
      | Oxycodone/APAP 5-325 mg          | oxycodone      |
      | Percocet                         | Percocet       |
      | OxyContin                        | Oxycontin      |
      | OxyContin 20 mg ER               | Oxycontin      |
      | morphine ER 30 mg                | morphine       |
      | MS Contin 15 mg                  | MS Contin      |
      | hydrocodone-acetaminophen        | hydrocodone    |
      | tapentadol ER                    | tapentadol     |
      | codeine phosphate 30 mg          | codeine        |
      | Co-codamol 30/500                | co-codamol     |
      | Fentanyl patch 25 mcg/h          | fentanyl       |
      | hydromorphone                    | hydromorphone  |
      | oxymorphone                      | oxymorphone    |
      | pethidine                        | pethidine      |
      | Meperidine                       | meperidine     |
      | methadone                        | methadone      |
      | Methadone 80 mg daily            | methadone      |
      | buprenorphine/naloxone           | buprenorphine  |
      | Suboxone                         | Suboxone       |
      | Butrans 10 mcg/h patch           | BuTrans        |

  Scenario: A 54-year-old eligible for LDN with opioid use disorder and no opioid listed is told LDN is contraindicated
    Given a 54-year-old female with 16 weeks of forefoot pain
    And neuropathic features burning, tingling, numbness, electric_shocks
    And metatarsal_pad tried for 8 weeks with response none
    And comorbidity opioid_use_disorder
    When the patient is triaged
    Then low_dose_naltrexone is not recommended as contraindicated because "opioid exposure: opioid use disorder (opioid dependence, including methadone or buprenorphine maintenance); naltrexone blocks opioid analgesia and can precipitate withdrawal"
    And rule OPIOID-USE-DISORDER fires
    And rule LDN-CI-OPIOID fires
    And rule LDN-OFFER does not fire

  Scenario: A 54-year-old on buprenorphine/naloxone maintenance for opioid use disorder learns both reasons
    Given a 54-year-old female with 16 weeks of forefoot pain
    And neuropathic features burning, tingling, numbness, electric_shocks
    And metatarsal_pad tried for 8 weeks with response none
    And comorbidity opioid_use_disorder
    And medication "buprenorphine/naloxone"
    When the patient is triaged
    Then low_dose_naltrexone is not recommended as contraindicated because "buprenorphine/naloxone is an opioid"
    And low_dose_naltrexone is not recommended as contraindicated because "opioid use disorder"

  Scenario Outline: A 54-year-old eligible for LDN with <text> is told LDN is contraindicated (a hard stop)
    Given a 54-year-old female with 16 weeks of forefoot pain
    And neuropathic features burning, tingling, numbness, electric_shocks
    And metatarsal_pad tried for 8 weeks with response none
    And comorbidity <code>
    When the patient is triaged
    Then low_dose_naltrexone is not recommended as contraindicated because "<text>: naltrexone hepatotoxicity"
    And rule LDN-CI-LIVER fires
    And rule LDN-CAUTION-HEPATIC does not fire
    And rule LDN-OFFER does not fire
    And the finding ldn_contraindication is concluded

    Examples:
      | code            | text            |
      | acute_hepatitis | acute hepatitis |
      | liver_failure   | liver failure   |

  Scenario Outline: A 54-year-old eligible for LDN who <condition_text> is still offered LDN, with the caution stated
    Given a 54-year-old female with 16 weeks of forefoot pain
    And neuropathic features burning, tingling, numbness, electric_shocks
    And metatarsal_pad tried for 8 weeks with response none
    And <condition>
    When the patient is triaged
    Then low_dose_naltrexone is recommended as adjunct
    And the details of low_dose_naltrexone mention "<caution>"
    And rule <rule> fires
    And rule LDN-OFFER fires
    And rule LDN-CI-LIVER does not fire
    And low_dose_naltrexone is not withheld as contraindicated

    Examples:
      | condition_text              | condition                      | caution                                                    | rule                      |
      | has hepatic impairment      | comorbidity hepatic_impairment | hepatic impairment: hepatotoxicity warning                 | LDN-CAUTION-HEPATIC       |
      | is pregnant                 | the patient is pregnant        | pregnancy: limited safety data for naltrexone              | LDN-CAUTION-PREGNANT      |
      | is breastfeeding            | the patient is breastfeeding   | breastfeeding: naltrexone passes into breast milk          | LDN-CAUTION-BREASTFEEDING |

  Scenario: A 54-year-old eligible for LDN, not pregnant, not breastfeeding, with no liver disease and no opioid, is offered LDN with no caution
    Given a 54-year-old female with 16 weeks of forefoot pain
    And neuropathic features burning, tingling, numbness, electric_shocks
    And metatarsal_pad tried for 8 weeks with response none
    And the patient is not_pregnant
    And medication "sertraline"
    When the patient is triaged
    Then low_dose_naltrexone is recommended as adjunct
    And LDN is offered with no caution
    And rule LDN-CAUTION-HEPATIC does not fire
    And rule LDN-CAUTION-PREGNANT does not fire
    And rule LDN-CAUTION-BREASTFEEDING does not fire
    And rule LDN-CI-LIVER does not fire
    And rule LDN-CI-OPIOID does not fire
    And rule OPIOID-MEDICATION does not fire
    And the finding ldn_contraindication is not concluded

  # ---------------------------------------------------------------- never hidden

  Scenario: A 54-year-old taking tramadol with only 3 weeks of neuropathic pain learns both that LDN is contraindicated and that it is deferred
    Given a 54-year-old female with 3 weeks of forefoot pain
    And neuropathic features burning, tingling, numbness, electric_shocks
    And medication "tramadol"
    When the patient is triaged
    Then low_dose_naltrexone is not recommended as contraindicated because "tramadol is an opioid"
    And low_dose_naltrexone is not recommended as deferred because "pain 3 weeks"
    And rule LDN-CI-OPIOID fires
    And rule LDN-DEFERRED fires

  Scenario: A 54-year-old taking oxycodone with 16 weeks of pain after 8 weeks of pads and DN4 2/10 learns both that LDN is contraindicated and not indicated
    Given a 54-year-old female with 16 weeks of forefoot pain
    And neuropathic features burning, tingling
    And metatarsal_pad tried for 8 weeks with response none
    And medication "oxycodone"
    When the patient is triaged
    Then low_dose_naltrexone is not recommended as contraindicated because "oxycodone is an opioid"
    And low_dose_naltrexone is not recommended as not_indicated because "DN4 2/10"

  Scenario: A 54-year-old with liver failure who takes methadone learns both contraindications
    Given a 54-year-old female with 16 weeks of forefoot pain
    And neuropathic features burning, tingling, numbness, electric_shocks
    And metatarsal_pad tried for 8 weeks with response none
    And comorbidity liver_failure
    And medication "methadone"
    When the patient is triaged
    Then low_dose_naltrexone is not recommended as contraindicated because "methadone is an opioid"
    And low_dose_naltrexone is not recommended as contraindicated because "liver failure"
    And rule LDN-CI-LIVER fires
    And rule LDN-CI-OPIOID fires

  # ---------------------------------------------------------------- medication names that are not opioids

  Scenario: A 54-year-old eligible for LDN taking "Flurbex 20 mg", an unrecognised name, is not offered LDN until Flurbex is confirmed not to be an opioid
    Given a 54-year-old female with 16 weeks of forefoot pain
    And neuropathic features burning, tingling, numbness, electric_shocks
    And metatarsal_pad tried for 8 weeks with response none
    And medication "Flurbex 20 mg"
    When the patient is triaged
    Then medication:flurbex 20 mg is listed as unknown
    And low_dose_naltrexone is not recommended as deferred because "confirm that 'Flurbex 20 mg' is not an opioid"
    And rule MEDICATION-UNRECOGNISED fires
    And rule LDN-DEFERRED-UNRECOGNISED fires
    And rule LDN-OFFER does not fire
    And rule LDN-CI-OPIOID does not fire
    And no result says "no opioid exposure"

  Scenario Outline: A 54-year-old eligible for LDN taking "<name>", <why>, is offered LDN
    Given a 54-year-old female with 16 weeks of forefoot pain
    And neuropathic features burning, tingling, numbness, electric_shocks
    And metatarsal_pad tried for 8 weeks with response none
    And medication "<name>"
    When the patient is triaged
    Then low_dose_naltrexone is recommended as adjunct
    And rule OPIOID-MEDICATION does not fire
    And rule MEDICATION-UNRECOGNISED does not fire
    And rule LDN-CI-OPIOID does not fire

    Examples:
      | name                     | why                                  |
      | Sertraline 50 mg         | a non-opioid antidepressant          |
      | acetaminophen 500 mg     | paracetamol without an opioid        |
      | Pregabalin 75 mg         | a gabapentinoid                      |
