"""The labour registries' words: which registers there are, the employers' sectors, the skills a
laid-off worker and a vacancy are matched on, and the quarterly report's timetable.

Codes are stored; the web app labels them (``labour.register.<code>``, ``labour.skill.<code>``).
"""

from __future__ import annotations

# One register per group of people the household survey misses (DOMAIN 001 §3.2).
REGISTERS = ("formal_worker", "contractor_labour", "shopkeeper", "daily_wager", "domestic", "home_based",
             "auto_workshop", "hotel", "fuel_station", "laid_off")
# the employers' uploads of informal workers name the sector of each worker
SECTORS = ("domestic", "home_based", "auto_workshop", "hotel", "fuel_station")
SCHEMES = ("eobi", "pessi")        # formal workers' contributions: federal old-age and provincial social security

# What being on a register says about a person's labour status in the registry (registry.vocab.LABOUR).
STATUS_OF_REGISTER = {
    "formal_worker": "employed_formal", "contractor_labour": "employed_informal", "shopkeeper": "self_employed",
    "daily_wager": "daily_wager", "domestic": "employed_informal", "home_based": "employed_informal",
    "auto_workshop": "employed_informal", "hotel": "employed_informal", "fuel_station": "employed_informal",
    "laid_off": "unemployed",
}

SKILLS = ("mason", "carpenter", "electrician", "plumber", "welder", "painter", "driver", "motor_mechanic",
          "tailor", "cook", "cleaner", "security_guard", "salesperson", "computer_operator", "accountant",
          "machine_operator", "farm_worker", "helper")

# The quarterly self-report (the sending channel is another issue): a report is due three months
# after the last one (or after registration); reminders go out 14 days before, on the day and
# 14 days after; a report not in 30 days after it was due makes the status "stale".
REPORT_EVERY_DAYS = 91   # three months as 13 weeks (status.REPORT_EVERY)
REMIND_BEFORE_DAYS = 14
REMIND_AFTER_DAYS = 14
GRACE_DAYS = 30
REMINDERS = ("before", "due", "overdue")
# what a person may report: the working-age codes of registry.vocab.LABOUR
REPORTABLE = ("employed_formal", "employed_informal", "self_employed", "daily_wager", "unemployed",
              "not_in_labour_force", "student", "retired")
EMPLOYED = ("employed_formal", "employed_informal", "self_employed", "daily_wager")
STALE = "stale"

# Why someone is taken off a register (labour.registers.take_off). ``found_work`` needs the work they
# found (a status of EMPLOYED), recorded as their report; a shop is closed with ``shop_closed``.
LEAVE_REASONS = ("found_work", "moved_away", "stopped_working", "shop_closed", "other")
