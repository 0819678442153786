"""Bank and wallet accounts (banks and EMIs, through the State Bank): an account held by a person,
``bank`` with an IBAN (PKkk BBBB nnnnnnnnnnnnnnnn) or ``wallet`` with the mobile number
(03nnnnnnnnn). Stored per individual in ``financial_account``; numbers are masked in lists."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from sqlalchemy import select
from sqlalchemy.orm import Session

from isps.registry.fields import Field
from isps.interop.feeds import samples
from isps.interop.feeds.framework import Feed, Job, np_of, register, say
from isps.interop.models import FinancialAccount

KINDS = ("bank", "wallet")
IBAN = r"^PK\d{2}[A-Z]{4}\d{16}$"
WALLET = r"^03\d{9}$"
COLUMNS = (
    Field("cnic", "cnic"),
    Field("kind", "choice", choices=KINDS),
    Field("provider", "text", max_len=40),
    Field("account_number", "text", max_len=34),
    Field("opened_on", "date"),
    Field("status", "choice", required=False, choices=("active", "closed")),
)


def mask_number(number: str) -> str:
    """PK36SCBL0000001123456702 -> PK36 **** **** 6702; 03001234567 -> 0300***4567."""
    if number.startswith("PK") and len(number) == 24:
        return f"{number[:4]} **** **** {number[-4:]}"
    if len(number) == 11:
        return f"{number[:4]}***{number[-4:]}"
    return "*" * max(len(number) - 4, 0) + number[-4:]


def _masked_column(numbers: np.ndarray) -> np.ndarray:
    a = pa.array([x or "" for x in numbers.tolist()], pa.string())
    return np_of(pc.binary_join_element_wise(pc.utf8_slice_codeunits(a, 0, 4), "…",
                                             pc.utf8_slice_codeunits(a, -4), "")).astype(object)


def apply(job: Job) -> None:
    number = np.where(np.equal(job.col("account_number"), None), "", job.col("account_number")).astype(object)
    clean = np_of(pc.utf8_upper(pc.replace_substring(pa.array(number.tolist(), pa.string()), " ", ""))).astype(object)
    kind = job.col("kind")
    iban_ok = np_of(pc.match_substring_regex(pa.array(clean.tolist(), pa.string()), IBAN)).astype(bool)
    wallet_ok = np_of(pc.match_substring_regex(pa.array(clean.tolist(), pa.string()), WALLET)).astype(bool)
    bad = (np.equal(kind, "bank") & ~iban_ok) | (np.equal(kind, "wallet") & ~wallet_ok)
    job.reject(bad, "account_number", say(bad, "", _masked_column(clean), " is not a valid ", kind,
                                          np.where(np.equal(kind, "bank"), " IBAN (PK, 2 digits, 4-letter bank code, "
                                                   "16 digits)", " number (03 and 9 digits)")))
    p = job.people_by_cnic("cnic", what="account holder")
    pos = np.flatnonzero(p["found"] & job.live)
    if len(pos) == 0:
        return
    status = np.where(np.equal(job.col("status"), None), "active", job.col("status"))
    n = len(pos)
    job.upsert("financial_account", pa.table({
        "kind": pa.array(kind[pos].tolist(), pa.string()),
        "provider": pa.array(job.col("provider")[pos].tolist(), pa.string()),
        "account_number": pa.array(clean[pos].tolist(), pa.string()),
        "individual_id": pa.array(p["individual_id"][pos].astype(np.int64)),
        "household_id": pa.array(p["household_id"][pos].astype(np.int64)),
        "district_id": pa.array(p["district_id"][pos].astype(np.int64)),
        "opened_on": pa.array(list(job.col("opened_on")[pos]), pa.date32()),
        "status": pa.array(status[pos].tolist(), pa.string()),
        "source_ref": pa.array([s[:200] for s in job.source_ref(pos).tolist()]),
        "updated_at": pa.array([job.now] * n, pa.timestamp("us"))}),
        key=["kind", "provider", "account_number"],
        update=["individual_id", "household_id", "district_id", "status", "source_ref", "updated_at"],
        types={"kind": "TEXT", "provider": "TEXT", "account_number": "TEXT", "individual_id": "BIGINT",
               "household_id": "BIGINT", "district_id": "BIGINT", "opened_on": "DATE", "status": "TEXT",
               "source_ref": "TEXT", "updated_at": "TIMESTAMP"})


@dataclass(frozen=True)
class AccountView:
    id: int
    individual_id: int
    kind: str
    provider: str
    number: str          # masked
    opened_on: date
    status: str


def list_accounts(session: Session, *, household_id: int | None = None, individual_id: int | None = None,
                  district_scope: int | None = None) -> list[AccountView]:
    """A household's or person's accounts, numbers masked."""
    q = select(FinancialAccount)
    if household_id is not None:
        q = q.where(FinancialAccount.household_id == household_id)
    if individual_id is not None:
        q = q.where(FinancialAccount.individual_id == individual_id)
    if district_scope is not None:
        q = q.where(FinancialAccount.district_id == district_scope)
    return [AccountView(a.id, a.individual_id, a.kind, a.provider, mask_number(a.account_number), a.opened_on,
                        a.status) for a in session.scalars(q.order_by(FinancialAccount.id))]


def generate(session: Session, n: int, seed: int) -> pa.Table:
    rng = samples.rng_for(seed, "accounts")
    p = samples.people(session, n, rng)
    k = len(p["id"])
    wallet = rng.random(k) < 0.6
    banks = np.array(["HABB", "MUCB", "UNIL", "BPUN", "NBPA", "ABPA"], dtype=object)
    iban = ("PK" + rng.integers(10, 99, k).astype(str).astype(object) + banks[rng.integers(0, len(banks), k)]
            + np.char.zfill(rng.integers(0, 10**8, k).astype(str), 8).astype(object)
            + np.char.zfill(((np.arange(k) + seed * 1_000_003) % 10**8).astype(str), 8).astype(object))
    msisdn = ("03" + np.char.zfill(((np.arange(k) * 7_919 + seed * 104_729) % 10**9).astype(str), 9).astype(object))
    provider = np.where(wallet, rng.choice(["JazzCash", "Easypaisa"], k),
                        np.array(["HBL", "MCB", "UBL", "Bank of Punjab", "NBP", "Allied Bank"], dtype=object)[
                            rng.integers(0, 6, k)]).astype(object)
    return pa.table({
        "record_ref": samples.refs("SBP", seed, k), "cnic": samples.written_cnic(p["cnic"]),
        "kind": pa.array(np.where(wallet, "wallet", "bank").tolist(), pa.string()),
        "provider": pa.array(provider.tolist(), pa.string()),
        "account_number": pa.array(np.where(wallet, msisdn, iban).tolist(), pa.string()),
        "opened_on": samples.dates(rng, k, date(2020, 1, 1)),
        "status": pa.array(["active"] * k, pa.string()),
    })


FEED = register(Feed("accounts", "Bank and wallet accounts", "partner", COLUMNS, "opened_on", apply, generate,
                     __doc__))
