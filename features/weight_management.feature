@first_line
Feature: Weight management, not in pregnancy
  Weight management is offered from BMI 25 in adults, but BMI is not interpreted and no
  weight-loss advice is given in pregnancy (rule set 1.1.0).

  Background:
    Given a 32-year-old female with 4 weeks of forefoot pain
    And weight 85 kg and height 165 cm

  Scenario: A pregnant 32-year-old with BMI 31.2 is not given weight-loss advice
    Given the patient is pregnant
    When the patient is triaged
    Then weight_management is not recommended as not_indicated because "pregnant: BMI 31.2 is not interpreted"
    And rule FL-WEIGHT-PREGNANT fires
    And rule FL-WEIGHT does not fire

  Scenario: A 32-year-old with BMI 31.2 who is not pregnant is offered weight management
    Given the patient is not_pregnant
    When the patient is triaged
    Then weight_management is recommended as first_line
    And rule FL-WEIGHT fires
    And rule FL-WEIGHT-PREGNANT does not fire

  Scenario: A pregnant 32-year-old already 8 weeks into weight management with a partial response has it paused
    Given the patient is pregnant
    And weight_management tried for 8 weeks with response partial
    When the patient is triaged
    Then weight_management is not recommended as not_indicated because "paused"
    And rule FL-WEIGHT-PREGNANT-CONTINUE fires
    And rule FL-WEIGHT-CONTINUE does not fire
    And no intervention is both recommended and not recommended

  Scenario: A 32-year-old who is not pregnant, 8 weeks into weight management with a partial response, continues it
    Given the patient is not_pregnant
    And weight_management tried for 8 weeks with response partial
    When the patient is triaged
    Then weight_management is recommended as first_line
    And rule FL-WEIGHT-CONTINUE fires
    And rule FL-WEIGHT-PREGNANT-CONTINUE does not fire
