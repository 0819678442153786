"""Pull payments without crowds: pickup slots at cash outlets by capacity and distance.

During the COVID-19 lockdown "pull" cash points drew crowds (``../shared/DOMAIN.md``, 001 §5).
Here every beneficiary of a pull channel (branchless agent, cash outlet) in a district gets a turn:
an outlet, a slot (a day and an hour) and a seat number in that slot, with the SMS text they
receive. Outlets of the beneficiary's own tehsil come first (distance 0); only when they are full
for the whole horizon does a beneficiary go to the nearest outlet of another tehsil of the district
(tehsil distance) — and if the district is full too, to the next day after the horizon at home.
A seat number never exceeds the outlet's capacity (``(outlet, slot, seat)`` is unique), so no
slot of any outlet holds more people than it can serve. Seats already given (an earlier run, another
payroll of the district, however its days fall) count against a slot's capacity: a new schedule
fills only the free seats.
"""

from __future__ import annotations

import heapq
from datetime import date, datetime, time, timedelta

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from isps.payments.models import CashOutlet, PickupSlot

PULL_CHANNELS = ("agent", "cash_outlet")
SMS = ("ISPS {program}: Rs {amount:,.0f} is ready for you. Collect it at {outlet} on {day} between {start} and "
       "{end}, token {seat}. Bring your original CNIC for the fingerprint check. Please do not come at another time.")


def seed_outlets(session: Session, district_id: int, per_tehsil: int = 2, capacity: int = 20) -> int:
    """Cash outlets for a district's tehsils (branchless agents of the Bank of Punjab's ~30,000), for
    demos and tests: ``per_tehsil`` outlets of ``capacity`` people per slot. Idempotent."""
    have = session.scalar(select(CashOutlet.id).where(CashOutlet.district_id == district_id).limit(1))
    if have:
        return 0
    tehsils = session.execute(text("SELECT id, name FROM tehsil WHERE district_id = :d ORDER BY id"),
                              {"d": district_id}).all()
    n = 0
    for tid, name in tehsils:
        for k in range(per_tehsil):
            session.add(CashOutlet(name=f"{name} agent {k + 1}", kind="agent", district_id=district_id,
                                   tehsil_id=tid, capacity_per_slot=capacity))
            n += 1
    session.flush()
    return n


def schedule(session: Session, payroll_id: int, district_id: int, first_day: date, *, slots_per_day: int = 8,
             slot_minutes: int = 60, opens: time = time(9, 0), days: int = 5) -> dict:
    """Give every live pull-channel instruction of the payroll in the district without a slot a turn.
    Beneficiaries already scheduled keep theirs (running it again adds only the new ones)."""
    outlets = list(session.scalars(select(CashOutlet).where(CashOutlet.district_id == district_id)
                                   .order_by(CashOutlet.id)))
    if not outlets:
        raise ValueError(f"district {district_id} has no cash outlets")
    horizon = slots_per_day * days
    pending = session.execute(text(f"""SELECT i.id, i.amount, i.program_code, e.tehsil_id FROM payment_instruction i
        JOIN enrolment e ON e.id = i.enrolment_id
        WHERE i.payroll_id = :p AND i.district_id = :d AND i.status IN ('pending', 'sent')
        AND i.channel IN ({", ".join(f"'{c}'" for c in PULL_CHANNELS)})
        AND NOT EXISTS (SELECT 1 FROM pickup_slot s WHERE s.instruction_id = i.id)
        ORDER BY e.tehsil_id, i.id"""), {"p": payroll_id, "d": district_id}).all()
    ids = [o.id for o in outlets]
    cap = {o.id: o.capacity_per_slot for o in outlets}
    info = {o.id: o for o in outlets}

    def slot_start(idx: int) -> datetime:
        day = first_day + timedelta(days=idx // slots_per_day)
        return datetime.combine(day, opens) + timedelta(minutes=slot_minutes * (idx % slots_per_day))

    # seats already given from the first day on (this payroll's earlier runs, other payrolls of the district),
    # per outlet and slot in one GROUP BY: they count against the capacity of the slots measured from this first day
    taken: dict[tuple[int, datetime], tuple[int, int]] = {}
    for oid, start, n, top in session.execute(
            select(PickupSlot.outlet_id, PickupSlot.slot_start, func.count(), func.max(PickupSlot.seat))
            .where(PickupSlot.outlet_id.in_(ids), PickupSlot.slot_start >= datetime.combine(first_day, time(0)))
            .group_by(PickupSlot.outlet_id, PickupSlot.slot_start)):
        taken[(oid, start)] = (int(n), int(top))
    grid = {slot_start(k) for k in range(horizon)}
    load = {oid: 0 for oid in ids}  # people in the horizon's slots at each outlet
    for (oid, start), (n, _) in taken.items():
        if start in grid:
            load[oid] += min(n, cap[oid])

    def free_seats(oid: int):
        """The outlet's free (slot, seat) in time order: the horizon first, then the days after it."""
        idx = 0
        while True:
            start = slot_start(idx)
            n, top = taken.get((oid, start), (0, 0))
            if n == top:  # seats 1..n are given (the usual case): the next ones are free
                free = range(n + 1, cap[oid] + 1)
            else:  # gaps left by an older schedule: read that one slot's seats
                used = set(session.scalars(select(PickupSlot.seat).where(PickupSlot.outlet_id == oid,
                                                                         PickupSlot.slot_start == start)))
                free = [k for k in range(1, cap[oid] + 1) if k not in used]
            for seat in free:
                yield idx, start, seat
            idx += 1

    seats = {oid: free_seats(oid) for oid in ids}
    by_tehsil: dict[int, list[CashOutlet]] = {}
    for o in outlets:
        by_tehsil.setdefault(o.tehsil_id, []).append(o)
    tehsil_ids = sorted(by_tehsil)
    # a heap of (load / capacity, id) per tehsil: the least crowded outlet there takes the next person
    heaps = {t: [(load[o.id] / o.capacity_per_slot, o.id) for o in os_] for t, os_ in by_tehsil.items()}
    for h in heaps.values():
        heapq.heapify(h)

    def take(tehsil: int, within_horizon: bool) -> int | None:
        h = heaps[tehsil]
        while h:
            _, oid = h[0]
            if within_horizon and load[oid] >= cap[oid] * horizon:
                return None
            heapq.heapreplace(h, ((load[oid] + 1) / cap[oid], oid))
            return oid
        return None

    def nearest(tehsil: int) -> list[int]:
        return sorted(tehsil_ids, key=lambda t: (abs(t - tehsil), t))

    # one pass over the beneficiaries in Python: the greedy choice of outlet (home tehsil first, the least
    # crowded outlet there, then the nearest tehsil) depends on every earlier choice
    rows, moved = [], 0
    for iid, amount, program, tehsil in pending:
        order = nearest(tehsil if tehsil is not None else tehsil_ids[0])
        oid = next((o for t in order if (o := take(t, True)) is not None), None)
        if oid is None:  # the whole district is full for the horizon: later days, at home if possible
            oid = take(order[0], False)
        o = info[oid]
        load[oid] += 1
        idx, start, seat = next(seats[oid])
        day = start.date()
        end = start + timedelta(minutes=slot_minutes)
        same = o.tehsil_id == tehsil
        moved += not same
        rows.append({"instruction_id": iid, "outlet_id": oid, "slot_start": start, "seat": seat,
                     "same_tehsil": same,
                     "sms": SMS.format(program=program, amount=amount, outlet=o.name, day=day.strftime("%d %b %Y"),
                                       start=start.strftime("%H:%M"), end=end.strftime("%H:%M"), seat=seat)})
    if rows:
        session.execute(PickupSlot.__table__.insert(), rows)
    return {"payroll_id": payroll_id, "district_id": district_id, "scheduled": len(rows),
            "other_tehsil": moved, "outlets": len(outlets)}


def occupancy(session: Session, district_id: int) -> list[dict]:
    """People per outlet and slot against the outlet's capacity."""
    rows = session.execute(text("""SELECT s.outlet_id, s.slot_start, COUNT(*), o.capacity_per_slot
        FROM pickup_slot s JOIN cash_outlet o ON o.id = s.outlet_id WHERE o.district_id = :d
        GROUP BY s.outlet_id, s.slot_start, o.capacity_per_slot ORDER BY s.outlet_id, s.slot_start"""),
                           {"d": district_id})
    return [{"outlet_id": o, "slot_start": str(t), "people": int(n), "capacity": int(c)} for o, t, n, c in rows]


def slot_of(session: Session, instruction_id: int) -> dict | None:
    s = session.get(PickupSlot, instruction_id)
    if s is None:
        return None
    return {"instruction_id": s.instruction_id, "outlet_id": s.outlet_id, "slot_start": s.slot_start.isoformat(),
            "seat": s.seat, "same_tehsil": s.same_tehsil, "sms": s.sms}


__all__ = ["seed_outlets", "schedule", "occupancy", "slot_of", "PULL_CHANNELS"]
