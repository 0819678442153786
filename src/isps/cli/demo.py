"""The main flows that ``isps demo`` runs after building the synthetic province, so that every
page a user opens on Monday morning has something in it: registry feeds from other institutions,
a partner's beneficiary list resolved against the registry, and Kafaalat from eligibility to
money (enrolment with a waiting list, a quarterly cycle and its payroll, both approved by a second
person, ISO 20022 files, a bank's status file reconciled, pickup slots for cash outlets, and a death
reported by NADRA that stops that person's payments and frees a place for the next household).

Each flow calls the domain modules only, is idempotent (a second ``make demo`` finds the work done
and says so) and prints a line or two of what it did.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pyarrow as pa
from rich.console import Console
from sqlalchemy import Engine, func, select, text

from isps.config import var_dir
from isps.db import transaction
from isps.registry import current
from isps.services.events import drain

PROGRAM = "bisp_kafaalat"
MAKER, CHECKER = "policy", "admin"   # demo users: the program manager makes, the administrator approves


def feeds_flow(engine: Engine, console: Console) -> None:
    """Monthly deliveries from DISCOs, telcos, Excise, land records, the provincial payroll and
    NADRA, applied with provenance, re-scored, and their events left for the programs."""
    from isps.interop import feeds
    from isps.interop.models import FeedDelivery

    with transaction(engine) as s:
        done = s.scalar(select(func.count()).select_from(FeedDelivery).where(FeedDelivery.reference.like("demo-%")))
    if done:
        console.print(f"registry feeds: {done} demo deliveries applied already")
        return
    with console.status("feeds from NADRA, DISCOs, telcos, Excise, land records and the payroll"):
        lines = []
        for name, n in (("electricity", 3000), ("telecom", 3000), ("vehicles", 500), ("land", 500),
                        ("payroll", 300), ("accounts", 1000), ("ngo", 300), ("nadra", 400)):
            sample = feeds.generate_sample(engine, name, n, seed=11)
            report = feeds.apply_delivery(engine, name, sample, reference=f"demo-{name}-1", actor="demo")
            lines.append(f"{name} {report.accepted:,}")
        rescored = drain(engine)["rescored"]
    console.print("registry feeds: records accepted (" + ", ".join(lines) + f"); {rescored:,} households re-scored")


# The partners' lists of the demo.
# Zakat reaches part of the poor (adult women of households Kafaalat's rule takes), so Kafaalat's
# enrolment meets it (same kind: a regular cash transfer to the household); Punjab's Bait-ul-Maal and
# Pakistan Bait-ul-Mal both pay one-off emergency assistance, to partly the same people; a few
# households also had large medical grants, which takes them past the yearly ceiling.
LIVE = current.sql("i")  # a current member of a household (isps.registry.current)
POOL = f"{LIVE} AND i.id % 40 = 0"
ADULT_WOMEN_OF_POOR = LIVE + """ AND i.sex = 'female' AND i.date_of_birth <= '{born}-01-01'
    AND i.id % 20 = {residue} AND i.household_id IN (SELECT r.household_id FROM eligibility_result r
        WHERE r.eligible = TRUE AND r.run_id = (SELECT MAX(x.id) FROM eligibility_run x JOIN eligibility_rule u
            ON u.id = x.rule_id WHERE u.program_code = '{program}'))"""


def _poor_women(residue: int) -> str:
    """Adult women of households Kafaalat's rule takes, one in twenty (``residue`` picks which)."""
    return ADULT_WOMEN_OF_POOR.format(born=date.today().year - 18, residue=residue, program=PROGRAM)


# (program, partner, reference, people drawn from, at most this many lines, share of those people, seed, prefix)
LISTS = (
    ("pbm_financial_assistance", "Pakistan Bait-ul-Mal", "demo-pbm-2026-q3", POOL, 5000, 0.3, 5, "PBM"),
    ("zakat_guzara_allowance", "Punjab Zakat and Ushr Department", "demo-zakat-guzara-2026-q3", _poor_women(0),
     3000, 1.0, 6, "ZG"),
    ("punjab_bait_ul_maal_assistance", "Punjab Social Welfare and Bait-ul-Maal Department",
     "demo-punjab-baitulmaal-2026", POOL, 2500, 0.15, 7, "PBA"),
    ("pbm_medical_assistance", "Pakistan Bait-ul-Mal", "demo-pbm-medical-2026", _poor_women(10), 300, 0.5, 8, "PBMM"),
    # a local Zakat committee's own list names the husband of some women already on the provincial
    # list: one household drawing Guzara twice through two members
    ("zakat_guzara_allowance", "Local Zakat Committee", "demo-zakat-lzc-2026", LIVE + """
        AND i.relation_to_head = 'head' AND i.sex = 'male' AND i.household_id IN (SELECT b.household_id
            FROM beneficiary b JOIN beneficiary_batch bb ON bb.id = b.batch_id
            WHERE bb.reference = 'demo-zakat-guzara-2026-q3' AND b.household_id IS NOT NULL)""", 500, 0.15, 10, "LZC"),
)
# arriving after Kafaalat's enrolment: Zakat's next quarter names some women already on Kafaalat
LATER = ("zakat_guzara_allowance", "Punjab Zakat and Ushr Department", "demo-zakat-guzara-2026-q4",
         f"""{LIVE} AND i.id IN (SELECT e.recipient_id FROM enrolment e
             WHERE e.program_code = '{PROGRAM}' AND e.status = 'enrolled' AND e.recipient_id % 25 = 0)""", 150, 1.0,
         9, "ZG4")


def _send_list(engine: Engine, program: str, partner: str, reference: str, where: str, n: int, share: float,
               seed: int, prefix: str):
    """A partner's list of registry people matching ``where`` (alias ``i``): ``share`` of them, at most
    ``n`` (so a small demo province is not all on one list), written the way
    partners write (CNICs missing or mistyped, spelling variants, day and month swapped), ingested
    and resolved; None if nobody matches."""
    from isps.linkage import ingest, synthetic
    from isps.linkage.resolve import read_arrow

    cols = ", ".join(f"i.{c} AS {c}" for c in ("id", "household_id", "cnic", "full_name", "father_husband_name",
                                               "sex", "date_of_birth", "district_id", "phone"))
    with engine.connect() as conn:
        people = read_arrow(conn, f"SELECT {cols} FROM individual i WHERE {where} ORDER BY i.id")
        marital = [m for (m,) in conn.execute(text(f"SELECT i.marital_status FROM individual i WHERE {where} "
                                                   "ORDER BY i.id"))]
    if not people.num_rows:
        return None
    people = people.append_column("marital_status", pa.array(marital, pa.string()))
    lines = max(1, min(n, int(people.num_rows * share)))
    lst = synthetic.partner_list(people, lines, seed=seed, prefix=prefix).drop(["true_individual_id"])
    if program == "pbm_medical_assistance":  # grants as approved, not the scheme's maximum
        grants = [str(80_000 + (k * 37_000) % 220_000) for k in range(lst.num_rows)]
        lst = lst.append_column("yearly_value", pa.array(grants, pa.string()))
    return ingest.ingest_table(engine, program, lst, partner=partner, reference=reference, actor="demo",
                               resolve=True)


def linkage_flow(engine: Engine, console: Console) -> None:
    """Partners' beneficiary lists (with the dirt real lists have: CNICs missing or mistyped,
    spelling variants, day and month swapped) ingested and resolved against the registry: Bait-ul-Mal
    (federal and Punjab's), Zakat, medical grants, with the overlaps real lists have."""
    from isps.linkage.models import BeneficiaryBatch

    with transaction(engine) as s:
        have = set(s.scalars(select(BeneficiaryBatch.reference).where(BeneficiaryBatch.reference.like("demo-%"))))
    todo = [spec for spec in LISTS if spec[2] not in have]
    if not todo:
        console.print(f"single beneficiary registry: {len(have)} demo lists already resolved")
        return
    done = []
    with console.status("partners' beneficiary lists resolved against the registry (CNIC, then Splink)"):
        for program, partner, reference, where, n, share, seed, prefix in todo:
            report = _send_list(engine, program, partner, reference, where, n, share, seed, prefix)
            if report is not None:
                res = report.resolution
                done.append(f"{partner} ({program}) {res.records:,} lines: {res.by_cnic:,} by CNIC, "
                            f"{res.by_splink:,} by Splink, {res.to_review:,} to review")
    for line in done:
        console.print("single beneficiary registry: " + line)
    console.print("duplicate benefits: web → Duplicate benefits (/sbr/reports); clerical review: Review queue")


def later_list_flow(engine: Engine, console: Console) -> None:
    """A Zakat list arriving after Kafaalat's enrolment: those it shows on both are flagged for an
    officer's review on Kafaalat's enrolment page, never cut off by the list."""
    from isps.linkage.models import BeneficiaryBatch

    program, partner, reference, where, n, share, seed, prefix = LATER
    with transaction(engine) as s:
        if s.scalar(select(BeneficiaryBatch.id).where(BeneficiaryBatch.reference == reference)):
            console.print(f"later list {reference}: already received")
            return
    with console.status("a later Zakat list, checked against the running enrolments"):
        _send_list(engine, program, partner, reference, where, n, share, seed, prefix)
        flagged = drain(engine)["duplicates_flagged"]
    console.print(f"later list {reference}: {flagged:,} Kafaalat enrolments flagged for review "
                  f"(web: /programs/{PROGRAM}/enrolment)")


def benefits_flow(engine: Engine, console: Console) -> None:
    """Kafaalat from eligibility to money, maker and checker distinct at every approval."""
    from isps.payments import payroll as pr
    from isps.payments import pickup
    from isps.programs import cycles
    from isps.programs import enrolment as en
    from isps.registry.models import District
    from isps.targeting.eligibility import rules

    with transaction(engine) as s:
        counts = en.summary(s, PROGRAM)["counts"]
    if counts.get("enrolled"):
        with transaction(engine) as s:
            latest = pr.payrolls(s, PROGRAM, limit=1)
        console.print(f"{PROGRAM}: {counts.get('enrolled', 0):,} enrolled, {counts.get('waiting', 0):,} waiting"
                      + (f"; payroll #{latest[0]['id']} {latest[0]['status']}" if latest else ""))
        return
    files_dir = var_dir() / "payments"
    with console.status("Kafaalat: enrolment, cycle, payroll, bank files, reconciliation"):
        with transaction(engine) as s:
            row, _ = rules.active_rule(s, PROGRAM)
            run = rules.run(s, row, MAKER)
            slots = max(1, int(run.eligible * 0.8))  # funds for four in five: the rest wait
            en.set_capacity(s, PROGRAM, MAKER, slots=slots)
            enrolled = en.enrol_from_run(s, PROGRAM, run.id, MAKER)
        with transaction(engine) as s:
            cycle = cycles.open_cycle(s, PROGRAM, date.today(), MAKER)
            ents = cycles.generate_entitlements(s, cycle.id)
            cycles.approve_cycle(s, cycle.id, CHECKER)
            cycle_id, period = cycle.id, cycle.period
        with transaction(engine) as s:
            payroll = pr.generate(s, cycle_id, MAKER)
            payroll_id = payroll.id
            # the treasury releases the cycle's money into the program's fund before it is paid
            pr.release_funds(s, PROGRAM, payroll.total, f"RO-{period}", CHECKER)
            pr.approve(s, payroll_id, CHECKER)
            files = pr.export(s, payroll_id, files_dir)["files"]
            status = pr.bank_status_csv(s, payroll_id, seed=1)
        (files_dir / f"status-{payroll_id}.csv").write_bytes(status)
        with transaction(engine) as s:  # before the money is collected: turns at the cash outlets
            district = s.execute(text("SELECT district_id FROM payment_instruction WHERE payroll_id = :p AND "
                                      "channel = 'cash_outlet' GROUP BY district_id ORDER BY COUNT(*) DESC, "
                                      "district_id LIMIT 1"), {"p": payroll_id}).scalar()
            slots_made, fullest, district_name = None, None, None
            if district is not None:
                pickup.seed_outlets(s, district)
                slots_made = pickup.schedule(s, payroll_id, district, date.today(), days=10)
                fullest = max((o["people"] / o["capacity"] for o in pickup.occupancy(s, district)), default=0)
                district_name = s.get(District, district).name
        with transaction(engine) as s:
            rec = pr.reconcile(s, status, f"status-{payroll_id}.csv", "bank-of-punjab")
            retried = pr.retry_failed(s, payroll_id)
        with transaction(engine) as s:
            ledger = pr.ledger_check(s, PROGRAM)
    console.print(f"{PROGRAM}: {enrolled.get('enrolled', 0):,} enrolled, {enrolled.get('waiting', 0):,} on the "
                  f"waiting list; cycle {period}: {ents['entitlements']:,} entitlements, Rs {ents['total']:,.0f}, "
                  f"approved by a second person")
    refused = enrolled.get("refused", {})
    console.print(f"{PROGRAM}: kept off because of another program they receive: {refused.get('same_kind', 0):,} "
                  f"same kind (e.g. Zakat's Guzara allowance), {refused.get('incompatible', 0):,} incompatible, "
                  f"{refused.get('ceiling', 0):,} above the household ceiling (web: /programs/{PROGRAM}/enrolment)")
    console.print(f"payroll #{payroll_id}: pain.001 and CSV in {files_dir}/ ({', '.join(Path(f).name for f in files.values())}); "
                  f"bank status reconciled ({rec['applied']:,} lines), {retried:,} failed payments retried on "
                  f"another channel; ledger {'balances' if ledger['balanced'] else 'DOES NOT BALANCE'}")
    if slots_made:
        console.print(f"pickup slots at {slots_made['outlets']} cash outlets in {district_name}: "
                      f"{slots_made['scheduled']:,} beneficiaries given a day and hour by SMS "
                      f"({slots_made['other_tehsil']:,} outside their tehsil); the fullest slot is at "
                      f"{fullest:.0%} of its outlet's capacity")
    _death_flow(engine, console, payroll_id)


def _death_flow(engine: Engine, console: Console, payroll_id: int) -> None:
    """NADRA reports the death of an enrolled woman: her household history says so with the source,
    her enrolment ends, her unpaid payments stop, and the first household waiting takes the place."""
    from isps.interop import feeds
    from isps.programs import enrolment as en
    from isps.registry.cnic import formatted, mask
    from isps.registry.models import Individual

    with transaction(engine) as s:
        found = s.execute(text("""SELECT e.id, i.cnic FROM enrolment e JOIN individual i ON i.id = e.recipient_id
            WHERE e.program_code = :p AND e.status = 'enrolled' AND i.cnic IS NOT NULL ORDER BY e.id LIMIT 1"""),
                          {"p": PROGRAM}).first()
    if found is None:
        return
    enrolment_id, cnic = found
    feeds.apply_delivery(engine, "nadra", [{"record_ref": f"DEMO-DEATH-{enrolment_id}", "event": "death",
                                            "event_date": date.today().isoformat(), "cnic": formatted(cnic)}],
                         reference=f"demo-nadra-death-{enrolment_id}", actor="demo")
    out = drain(engine)
    with transaction(engine) as s:
        after = en.get(s, enrolment_id)
        heir = s.get(Individual, after["recipient_id"]) if after["recipient_id"] else None
    if after["status"] == "enrolled" and heir is not None:
        fate = f"the household's benefit now goes to another adult member ({mask(heir.cnic) if heir.cnic else 'no CNIC'})"
    else:
        fate = f"enrolment #{enrolment_id} is {after['status']}; {out['promoted']} enrolled from the waiting list"
    console.print(f"NADRA reported the death of {mask(cnic)} (enrolment #{enrolment_id}): {fate}; "
                  "the death is in the household's history with its source")


# The labour registries of the demo: employers' files, booths, shops and a job board, in Kasur (the
# demo counter operator's district) and Lahore (the demo district officer's), by the modules' doors.
FORMAL_EMPLOYERS = (("EOBI-LHR-004217", "Ittefaq Foundries", "eobi"), ("EOBI-FSD-011830", "Crescent Textile Mills", "eobi"),
                    ("PESSI-KSR-00731", "Kasur Tanneries Co-operative", "pessi"),
                    ("PESSI-SKT-02264", "Sialkot Surgical Works", "pessi"),
                    ("EOBI-GRW-006645", "Gujranwala Fans Ltd", "eobi"), ("PESSI-MUL-01988", "Multan Ginning Factory", "pessi"))
CONTRACTORS = (("PEC-C4-11893", "Malik Builders", "ADP-2026-0412"), ("PEC-C3-07421", "Chaudhry & Sons Construction",
                                                                     "ADP-2026-0977"))
SECTOR_EMPLOYERS = (("HTL-LHR-0091", "Shalimar Hotel, Lahore", "hotel"), ("FS-KSR-0032", "Al-Noor Filling Station, Kasur",
                                                                          "fuel_station"),
                    ("DOM-LHR-1187", "Gulberg Residents' Welfare Association", "domestic"),
                    ("AW-GRW-0415", "Bhatti Auto Workshop, Gujranwala", "auto_workshop"),
                    ("HB-MUL-0208", "Multan Blue Pottery Home Workers' Group", "home_based"))
BOOTHS = {"Kasur": ("Lari Adda chowk, Kasur", "Chunian Chungi"), "Lahore": ("Yateem Khana chowk", "Thokar Niaz Beg")}
SHOPS = (("Madina Karyana Store", "grocery", "Main Bazar"), ("Al-Habib Cloth House", "cloth", "Railway Road"),
         ("Bismillah Hardware", "hardware", "Circular Road"), ("Usman Mobile Zone", "mobile phones", "Kutchery Bazar"),
         ("Ghousia Medical Store", "pharmacy", "Hospital Road"), ("Rehmat Sweets", "sweets", "Chowk Fawara"),
         ("Chaudhry Auto Parts", "auto parts", "GT Road"), ("Noor Tailors", "tailoring", "Kashmiri Bazar"),
         ("Faisal Electronics", "electronics", "Hall Road"), ("Bilal Milk Shop", "dairy", "Ichhra Bazar"))
LAID_OFF_SKILLS = (("machine_operator", "helper"), ("electrician",), ("driver", "motor_mechanic"), ("tailor",),
                   ("welder", "helper"), ("electrician", "welder"), ("cook", "cleaner"), ("mason", "helper"),
                   ("computer_operator", "accountant"), ("security_guard",))
VACANCIES = (("Lahore", "Ravi Textile Mills", "Machine operator (night shift)", "machine_operator,helper", 6),
             ("Lahore", "Shalimar Hospital", "Maintenance electrician", "electrician,welder", 2),
             ("Kasur", "Kasur Tanneries Co-operative", "Tannery helper", "helper,machine_operator", 8),
             ("Kasur", "Chunian Rice Mills", "Delivery driver", "driver,motor_mechanic", 3))


def _workers(engine: Engine, where: str, n: int, **params) -> list[tuple]:
    """Up to ``n`` living adults of working age who hold their CNIC alone, spread over the registry
    (a deterministic scatter, not the first ids), as (id, CNIC, name, district id)."""
    today = date.today()
    sql = f"""SELECT i.id, i.cnic, i.full_name, i.district_id FROM individual i
        WHERE {LIVE} AND i.cnic IS NOT NULL AND i.date_of_birth BETWEEN :old AND :young
          AND NOT EXISTS (SELECT 1 FROM individual j WHERE j.cnic = i.cnic AND j.id <> i.id) AND {where}
        ORDER BY (i.id * 7919) % 10007, i.id LIMIT :n"""
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(sql), {"old": today.replace(year=today.year - 58),
                                                         "young": today.replace(year=today.year - 19), "n": n,
                                                         **params})]


def _upload_file(engine: Engine, door: str, reference: str, rows: list[dict]):
    import pyarrow.csv as pacsv

    from isps.labour import uploads

    if not rows:  # a province too small to have anyone for this door
        return uploads.UploadReport(door, reference, "", "demo")

    folder = var_dir() / "labour"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / reference
    pacsv.write_csv(pa.Table.from_pylist(rows), path)
    report = uploads.upload(engine, door, path, actor="demo", reference=reference)
    if not report.ok:  # the demo's own files must pass its own doors
        raise RuntimeError(report.summary() + "; " + "; ".join(report.lines()[:5]))
    return report


def labour_flow(engine: Engine, console: Console) -> None:
    """The labour registries: employers' PESSI/EOBI contributions, an ADP contractor's labour and a
    sector file (hotel, fuel station, domestic, workshop, home-based), each through its upload door;
    booths in Kasur and Lahore with registered daily wagers, days worked and a week of offers by
    rotation (one wager an employer's file names is passed over); shops with certificates (one
    closed); laid-off workers with skills (one who found work) and vacancies that match them."""
    from datetime import timedelta

    from isps.labour import jobs, registers, shops, wagers
    from isps.labour.models import LabourUpload
    from isps.registry.cnic import formatted
    from isps.registry.models import District

    with transaction(engine) as s:
        if s.scalar(select(func.count()).select_from(LabourUpload).where(LabourUpload.reference.like("demo-%"))):
            console.print("labour registries: the demo's uploads, booths, shops and job board are in already")
            return
        district = {d.name: d.id for d in s.scalars(select(District).where(District.name.in_(tuple(BOOTHS))))}
    today = date.today()
    month = today.replace(day=1)
    months = [(month - timedelta(days=1)).replace(day=1)]
    months = [(months[0] - timedelta(days=1)).replace(day=1)] + months             # the last two full months
    with console.status("labour registries: employers' files, booths, shops, the job board"):
        # the people of the booths, the counters and the job board, district by district
        local = {name: _workers(engine, "i.district_id = :d AND i.id % 3 = 0", 40, d=did)
                 for name, did in district.items()}
        kept = {p[0] for people in local.values() for p in people}
        with engine.connect() as conn:  # a sample of the province a few times the size wanted, so the
            step = max(1, (conn.execute(text("SELECT COUNT(*) FROM individual")).scalar() or 0) // 40_000)
        crowd = [p for p in _workers(engine, "i.id % :step = :rest", 4000, step=step, rest=1 % step)
                 if p[0] not in kept]
        # three in five to the formal door, the rest to the contractor's and the sector employers' files
        a, b = min(2400, len(crowd) * 6 // 10), min(600, len(crowd) * 15 // 100)
        formal, contract, sector = crowd[:a], crowd[a:a + b], crowd[a + b:a + b + min(800, len(crowd) // 5)]
        # booths: ten wagers each, registered over October (then a few days they found work themselves)
        wager_ids: dict[str, list[int]] = {}
        with transaction(engine) as s:
            for name, booths in BOOTHS.items():
                people = local.get(name, [])[0::2][:20]     # half to the booths, a quarter each to shops and jobs
                for k, (pid, cnic, _, _) in enumerate(people):
                    booth = booths[k % 2]
                    wagers.register_wager(s, formatted(cnic), booth, months[0] + timedelta(days=k), "demo")
                    wager_ids.setdefault(booth, []).append(pid)
            for ids in wager_ids.values():
                for k, pid in enumerate(ids[::3]):
                    wagers.record_day(s, pid, months[1] + timedelta(days=3 + k), "demo")
        # an EOBI file also names one wager of the first booth: he is passed over at the booth from now on
        first = BOOTHS["Kasur"][0]
        taken = [p for p in local.get("Kasur", []) if wager_ids.get(first) and p[0] == wager_ids[first][0]]
        rows = [{"employer_ref": FORMAL_EMPLOYERS[k % 6][0], "employer_name": FORMAL_EMPLOYERS[k % 6][1],
                 "scheme": FORMAL_EMPLOYERS[k % 6][2], "cnic": formatted(p[1]), "worker_name": p[2],
                 "month": m.isoformat(), "wage": float(37_000 + (k * 1_370) % 45_000),
                 "contribution": float(round((37_000 + (k * 1_370) % 45_000) * (0.05 if k % 6 in (0, 1, 4) else 0.06)))}
                for k, p in enumerate(formal + taken) for m in months]
        up_formal = _upload_file(engine, "formal", f"demo-eobi-pessi-{months[-1]:%Y-%m}.csv", rows)
        rows = [{"employer_ref": CONTRACTORS[k % 2][0], "employer_name": CONTRACTORS[k % 2][1],
                 "scheme": CONTRACTORS[k % 2][2], "cnic": formatted(p[1]), "worker_name": p[2], "month": m.isoformat(),
                 "days_worked": 18 + k % 9, "wage": float((18 + k % 9) * 1_250)}
                for k, p in enumerate(contract) for m in months]
        up_contract = _upload_file(engine, "contractor", f"demo-adp-labour-{months[-1]:%Y-%m}.csv", rows)
        rows = [{"employer_ref": SECTOR_EMPLOYERS[k % 5][0], "employer_name": SECTOR_EMPLOYERS[k % 5][1],
                 "sector": SECTOR_EMPLOYERS[k % 5][2], "cnic": formatted(p[1]), "worker_name": p[2],
                 "month": months[-1].isoformat(), "days_worked": 22 + k % 5, "wage": float(22_000 + (k * 710) % 14_000)}
                for k, p in enumerate(sector)]
        up_sector = _upload_file(engine, "sector", f"demo-sector-workers-{months[-1]:%Y-%m}.csv", rows)
        # this week's offers at each booth, by rotation, and worked
        offers = 0
        with transaction(engine) as s:
            for name, booths in BOOTHS.items():
                for booth in booths:
                    if not wager_ids.get(booth):
                        continue
                    for back in range(6, 0, -1):
                        offer = wagers.offer_work(s, district[name], booth, today - timedelta(days=back), 3,
                                                  ("DHA Phase 9 site" if name == "Lahore" else "Kasur bypass road"),
                                                  "Shuttering and loading bricks", "demo")
                        wagers.take_offer(s, offer.id)
                        offers += 1
        # shops, one of them since closed; laid-off workers, one since in work; vacancies
        made, laid_off = [], 0
        with transaction(engine) as s:
            for name in BOOTHS:
                for k, (pid, cnic, _, _) in enumerate(local.get(name, [])[1::4][:5]):
                    shop_name, trade, street = SHOPS[(k + (5 if name == "Lahore" else 0)) % len(SHOPS)]
                    made.append(shops.register_shop(s, formatted(cnic), shop_name, trade, f"{street}, {name}",
                                                    months[0] + timedelta(days=2 * k), "demo").certificate_no)
                for k, (pid, cnic, _, _) in enumerate(local.get(name, [])[3::4][:10]):
                    jobs.register_laid_off(s, formatted(cnic), months[0] + timedelta(days=3 * k),
                                           LAID_OFF_SKILLS[k % len(LAID_OFF_SKILLS)], "demo")
                    laid_off += 1
            if made:
                shops.close_shop(s, made[-1], month.replace(day=1), "shop_closed", "demo", note="rent too high")
            for name, employer, title, skills, slots in VACANCIES:
                if name in district:
                    jobs.post_vacancy(s, district[name], employer, title, skills, slots, today, "demo")
            back = local.get("Kasur", [])[3:4]
            if back:
                registers.take_off_by_cnic(s, "laid_off", formatted(back[0][1]), month.replace(day=1), "found_work",
                                           "demo", now="employed_informal", note="taken on by a brick kiln")
        rescored = drain(engine)["rescored"]
    console.print(f"labour registries: {up_formal.workers:,} formal, {up_contract.workers:,} contractor and "
                  f"{up_sector.workers:,} sector workers from employers' files; {sum(map(len, wager_ids.values()))} "
                  f"daily wagers at {len(wager_ids)} booths, {offers} days of work offered by rotation")
    console.print(f"labour registries: {len(made)} shops with certificates, {laid_off} laid-off workers and "
                  f"{len(VACANCIES)} vacancies on the job board; {rescored:,} households re-scored "
                  "(web: Registry → Labour registries)")


def grievances_flow(engine: Engine, console: Console) -> None:
    """A few dozen grievances over the last three months, by every channel and category: payment
    complaints linked to Kafaalat payments in Kasur and counted against their agents, a wrong
    exclusion that starts a re-assessment, most resolved with a root cause, some confirmed, some
    reopened by a citizen who was not satisfied, and some left late (the worker escalates them)."""
    from datetime import datetime, timedelta

    from isps.access.service import Principal
    from isps.citizen.grievances import service as gs

    with transaction(engine) as s:
        if s.execute(text("SELECT COUNT(*) FROM grievance")).scalar_one():
            console.print("grievances: already filed")
            return
        households = [r[0] for r in s.execute(text(
            "SELECT MIN(id) FROM household GROUP BY district_id ORDER BY district_id LIMIT 8"))]
        kasur = [r[0] for r in s.execute(text("SELECT id FROM household WHERE district_id = 2 ORDER BY id LIMIT 12"))]
        payments = s.execute(text("""SELECT i.id, s.outlet_id FROM payment_instruction i
            JOIN pickup_slot s ON s.instruction_id = i.id WHERE i.district_id = 2 ORDER BY i.id LIMIT 12""")).all()
        outlets = [r[0] for r in s.execute(text("SELECT id FROM cash_outlet WHERE district_id = 2 ORDER BY id LIMIT 3"))]
        if not kasur:
            console.print("grievances: no household in Kasur yet")
            return
        counter = Principal("kasur.counter", "counter_operator", 2)
        admin = Principal("admin", "administrator", None)
        officer = Principal("kasur.grievance", "grievance_officer", 2)
        now = datetime.now().replace(microsecond=0)
        made, resolved, reopened = 0, 0, 0
        for i in range(36):
            category = gs.CATEGORIES[i % len(gs.CATEGORIES)]
            channel = gs.CHANNELS[i % len(gs.CHANNELS)]
            opened = now - timedelta(days=88 - 2 * i, hours=i % 7)
            kw: dict = {"household_id": kasur[i % len(kasur)]}
            if i % 5 == 4 and households:  # elsewhere in Punjab: filed by the call centre (province-wide)
                kw = {"household_id": households[i % len(households)]}
            if category in gs.PAYMENT_CATEGORIES and payments and "household_id" in kw and i % 5 != 4:
                pay = payments[i % len(payments)]
                kw = {"payment_instruction_id": pay.id}
            if category in gs.AGENT_CATEGORIES and outlets:
                kw.setdefault("outlet_id", outlets[i % len(outlets)])
            if category in gs.AGENT_CATEGORIES and kw.get("outlet_id") is None:
                category = "other"
            who = counter if i % 5 != 4 and channel == "counter" else admin
            try:
                g = gs.file_grievance(s, who, channel=channel, category=category, lang="ur" if i % 3 else "en",
                                      description=f"{category.replace('_', ' ')}: demo complaint {i + 1}",
                                      district_id=None, phone=f"0300{1000000 + i * 7919:07d}", now=opened, **kw)
            except gs.GrievanceError as exc:
                console.print(f"grievance {i}: {exc}")
                continue
            made += 1
            if i % 6 in (1, 2, 3, 4) and opened < now - timedelta(days=3):  # resolved
                handler = officer if g.district_id == 2 else admin
                cause = {"payment_not_received": "bank_delay", "payment_partial": "bank_delay",
                         "agent_deduction": "agent_misconduct", "agent_conduct": "agent_misconduct",
                         "data_error": "registry_data_error", "wrong_exclusion": "eligibility_rule",
                         "wrong_inclusion": "duplicate", "staff_conduct": "staff_conduct"}.get(category,
                                                                                         "citizen_misunderstanding")
                if g.level > 1 or (handler.scope is not None and g.district_id != handler.scope):
                    handler = admin
                gs.resolve(s, handler, g.id, root_cause=cause, resolution="checked and put right",
                           now=opened + timedelta(hours=6 + 13 * (i % 9)))
                resolved += 1
                if i % 6 == 2:
                    gs.confirm(s, g.id, handler, satisfied=True, now=opened + timedelta(days=4))
                elif i % 6 == 3 and i % 4 == 3:
                    gs.confirm(s, g.id, f"sms:{gs.mask_phone(g.phone)}", satisfied=False,
                               note="the problem is still there", now=opened + timedelta(days=4))
                    reopened += 1
        late = gs.count_grievances(s, None, late=True, now=now)
    console.print(f"grievances: {made} filed ({resolved} resolved, {reopened} reopened by the citizen, "
                  f"{late} late); see /grievances and /grievances/analytics")


def field_flow(engine: Engine, console: Console, base_url: str = "http://127.0.0.1:8000") -> None:
    """Field work in Kasur: a phone registered to kasur.enumerator (its token and Collect's server
    address printed, as the supervisor's page shows them once), the households of Kasur's most
    populous union council given to it to survey, and a distribution site it staffs: the cash counter
    of a Kasur outlet with its list from the payroll's pickup slots when the payroll seated anyone
    there, else an in-kind ration point with a list of Kasur households."""
    from datetime import timedelta

    from isps.access.service import Principal
    from isps.fieldwork import assignments, devices, distribution
    from isps.fieldwork.models import FieldDevice

    supervisor = Principal("kasur.supervisor", "field_supervisor", 2)
    with transaction(engine) as s:
        have = s.scalar(select(FieldDevice.code).where(FieldDevice.username == "kasur.enumerator").limit(1))
        if have:
            console.print(f"field work: device {have} of kasur.enumerator registered already (its token was shown "
                          "once; revoke and register again on /field/devices for a new one)")
            return
        uc = s.execute(text("""SELECT uc.name, h.tehsil_id FROM household h JOIN union_council uc ON uc.id = h.uc_id
            WHERE h.district_id = 2 GROUP BY uc.name, h.tehsil_id ORDER BY COUNT(*) DESC, uc.name LIMIT 1""")).first()
        if uc is None:
            console.print("field work: no household in Kasur yet")
            return
        device, token = devices.register_device(s, supervisor, code="kasur-demo-1", label="Demo phone (ODK Collect)",
                                                username="kasur.enumerator")
        settings = devices.collect_settings(device, token, base_url)
        surveys = assignments.assign(s, supervisor, kind="survey", enumerator="kasur.enumerator",
                                     tehsil_id=uc.tehsil_id, union_council=uc.name,
                                     due_on=date.today() + timedelta(days=14))
        seated = s.execute(text("""SELECT ps.outlet_id, i.payroll_id, COUNT(*) FROM pickup_slot ps
            JOIN payment_instruction i ON i.id = ps.instruction_id JOIN cash_outlet o ON o.id = ps.outlet_id
            WHERE o.district_id = 2 GROUP BY ps.outlet_id, i.payroll_id ORDER BY COUNT(*) DESC, ps.outlet_id
            LIMIT 1""")).first()
        if seated is not None:
            site = distribution.create_site(s, supervisor, name="Kasur cash counter (pickup days)", kind="cash",
                                            district_id=2, outlet_id=seated.outlet_id)
            lines = distribution.list_from_payroll(s, supervisor, site.id, seated.payroll_id)
            what = f"cash from payroll #{seated.payroll_id}'s pickup slots"
        else:
            homes = list(s.execute(text("SELECT id FROM household WHERE district_id = 2 ORDER BY id LIMIT 25")).scalars())
            site = distribution.create_site(s, supervisor, name="Govt. Girls High School, Khudian (ration point)",
                                            kind="in_kind", district_id=2, opens_on=date.today())
            lines = distribution.list_in_kind(s, supervisor, site.id, list_ref=f"ration:{date.today():%Y-%m}",
                                              item="ration_pack", quantity=1, household_ids=homes)
            what = "ration packs"
        assignments.assign(s, supervisor, kind="site", enumerator="kasur.enumerator", site_id=site.id)
    console.print(f"field work: {surveys} households of {uc.name} to survey and site '{site.name}' ({lines} lines, "
                  f"{what}) given to kasur.enumerator; see /field")
    console.print(f"field work: ODK Collect for kasur.enumerator (device kasur-demo-1): server "
                  f"{settings['general']['server_url']} (token {token}, shown once)")
