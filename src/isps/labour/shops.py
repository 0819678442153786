"""Shopkeepers: registration with a unique certificate number, and the certificate to display.

The number is ``PSR-<district id, two digits>-<shop id, six digits>`` (Punjab Shop Registration):
unique because the shop id is, readable at a glance, and carrying the district that issued it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from isps.labour import registers
from isps.labour.models import LabourLeaving, Shop
from isps.labour.status import LabourError, person_for, required_text
from isps.registry import cnic as cnic_rules
from isps.registry.fields import Field
from isps.registry.models import District, Individual

_NAME = Field("shop_name", "text", max_len=120, words=True)
_TRADE = Field("trade", "text", max_len=80, words=True)
_ADDRESS = Field("address", "text", max_len=200, words=True)



def register_shop(session: Session, cnic: str, shop_name: str, trade: str, address: str, registered_on: date,
                  actor: str, district_scope: int | None = None) -> Shop:
    """Register a shop for the registry person holding ``cnic`` (within the user's district); the
    owner goes on the shopkeeper register (self-employed in the registry)."""
    name, what, where = (required_text(_NAME, shop_name), required_text(_TRADE, trade),
                         required_text(_ADDRESS, address))
    person = person_for(session, cnic, district_scope)
    shop = Shop(certificate_no="pending", individual_id=person.id, household_id=person.household_id,
                district_id=person.district_id, shop_name=name, trade=what, address=where,
                registered_on=registered_on, registered_by=actor)
    session.add(shop)
    session.flush()
    shop.certificate_no = f"PSR-{person.district_id:02d}-{shop.id:06d}"
    if not session.scalar(select(func.count()).select_from(Shop).where(
            Shop.individual_id == person.id, Shop.id != shop.id)):
        registers.enrol(session, person, "shopkeeper", registered_on, actor, source_ref=shop.certificate_no)
    session.flush()
    return shop


def closed_on(session: Session, shop_ids: list[int]) -> dict[int, date]:
    """The day each of these shops was closed (absent: open)."""
    if not shop_ids:
        return {}
    return dict(session.execute(select(LabourLeaving.shop_id, LabourLeaving.left_on).where(
        LabourLeaving.shop_id.in_(shop_ids))).all())


def close_shop(session: Session, certificate_no: str, closed_on_: date, reason: str, actor: str, *,
               now: str | None = None, note: str = "", district_scope: int | None = None) -> LabourLeaving:
    """Close a registered shop: its certificate no longer holds (the page says since when), the
    record is kept; the owner leaves the shopkeeper register when this was their last open shop."""
    shop = session.scalar(select(Shop).where(Shop.certificate_no == (certificate_no or "").strip().upper()))
    if shop is None:
        raise LabourError(f"certificate: no shop has the certificate number {(certificate_no or '')[:30]}")
    if district_scope is not None and shop.district_id != district_scope:
        raise LabourError(f"certificate: {shop.certificate_no} was issued outside your district")
    if closed_on(session, [shop.id]):
        raise LabourError(f"certificate: {shop.certificate_no} is closed already")
    if closed_on_ < shop.registered_on:
        raise LabourError(f"date: {closed_on_.isoformat()} is before the shop was registered "
                          f"({shop.registered_on.isoformat()})")
    owner = session.get(Individual, shop.individual_id)
    others = session.scalar(select(func.count()).select_from(Shop).where(
        Shop.individual_id == owner.id, Shop.id != shop.id,
        Shop.id.not_in(select(LabourLeaving.shop_id).where(LabourLeaving.shop_id.is_not(None)))))
    if not others:
        return registers.take_off(session, owner, "shopkeeper", closed_on_, reason, actor, now=now, note=note,
                                  shop_id=shop.id)
    # another shop of theirs is open: they stay a shopkeeper, this shop's closing is still history
    if reason not in registers.LEAVE_REASONS:
        raise LabourError(f"reason: must be one of {', '.join(registers.LEAVE_REASONS)}")
    note = (note or "").strip()
    if note:
        note = required_text(registers._NOTE, note)
    leaving = LabourLeaving(register="shopkeeper", individual_id=owner.id, household_id=owner.household_id,
                            district_id=owner.district_id, worker_id=None, shop_id=shop.id,
                            registered_since=shop.registered_on, left_on=closed_on_, reason=reason,
                            now_status=None, note=note or None, recorded_by=actor)
    session.add(leaving)
    session.flush()
    return leaving


@dataclass(frozen=True)
class Certificate:
    certificate_no: str
    shop_name: str
    trade: str
    address: str
    owner: str
    owner_cnic: str          # masked
    district: str
    district_ur: str
    registered_on: date
    registered_by: str
    district_id: int
    closed_on: date | None = None


def certificate(session: Session, certificate_no: str, district_scope: int | None = None) -> Certificate:
    shop = session.scalar(select(Shop).where(Shop.certificate_no == certificate_no.strip().upper()))
    if shop is None:
        raise LabourError(f"certificate: no shop has the certificate number {certificate_no[:30]}")
    if district_scope is not None and shop.district_id != district_scope:
        raise LabourError(f"certificate: {shop.certificate_no} was issued outside your district")
    owner = session.get(Individual, shop.individual_id)
    district = session.get(District, shop.district_id)
    return Certificate(shop.certificate_no, shop.shop_name, shop.trade, shop.address, owner.full_name,
                       cnic_rules.mask(owner.cnic) if owner.cnic else "—", district.name, district.name_ur,
                       shop.registered_on, shop.registered_by, shop.district_id,
                       closed_on(session, [shop.id]).get(shop.id))


def _filtered(district_id: int | None):
    q = select(Shop)
    return q.where(Shop.district_id == district_id) if district_id is not None else q


def shops(session: Session, district_id: int | None = None, after: int | None = None, limit: int = 50) -> list[Shop]:
    """Registered shops by keyset (``after`` the last id seen)."""
    q = _filtered(district_id)
    if after:
        q = q.where(Shop.id > after)
    return list(session.scalars(q.order_by(Shop.id).limit(limit)))


def count_shops(session: Session, district_id: int | None = None) -> int:
    return session.scalar(select(func.count()).select_from(_filtered(district_id).subquery())) or 0
