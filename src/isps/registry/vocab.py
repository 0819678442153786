"""Controlled vocabularies of the Poverty Score Card and the individual roster.

Stored as short codes; importers validate against these sets and the web app
labels them. Kept in one place so that every module agrees on the codes.
"""

from __future__ import annotations

SOURCES = ("survey", "nadra", "partner", "self_report", "operator", "synthetic", "import", "labour", "counter")

SEX = ("male", "female", "transgender")
RELATION = ("head", "spouse", "son", "daughter", "father", "mother", "brother", "sister",
            "grandchild", "daughter_in_law", "son_in_law", "other")
MARITAL = ("never_married", "married", "widowed", "divorced")
DISABILITY = ("none", "physical", "visual", "hearing", "intellectual", "multiple")
EDUCATION = ("none", "primary", "middle", "matric", "intermediate", "graduate", "postgraduate")
MATERNAL = ("none", "pregnant", "lactating")
LABOUR = ("employed_formal", "employed_informal", "self_employed", "daily_wager", "unemployed",
          "not_in_labour_force", "student", "retired", "child")

TENURE = ("owned", "rented", "rent_free")
ROOF = ("rcc", "iron_sheet", "wood_bamboo", "mud_thatch")
WALL = ("burnt_brick", "unburnt_brick", "mud", "wood_other")
TOILET = ("flush", "pit", "none")
WATER = ("piped", "motor_pump", "hand_pump", "well", "other")
FUEL = ("gas", "lpg", "wood", "dung_crop", "kerosene", "electric")

DURABLES = ("fridge", "freezer", "air_conditioner", "air_cooler", "washing_machine",
            "television", "motorcycle", "car", "computer")

HOUSEHOLD_CATEGORICAL: dict[str, tuple[str, ...]] = {
    "tenure": TENURE, "roof": ROOF, "wall": WALL, "toilet": TOILET,
    "drinking_water": WATER, "cooking_fuel": FUEL,
}
INDIVIDUAL_CATEGORICAL: dict[str, tuple[str, ...]] = {
    "sex": SEX, "relation_to_head": RELATION, "marital_status": MARITAL,
    "disability": DISABILITY, "education": EDUCATION, "labour_status": LABOUR, "maternal_status": MATERNAL,
}
