"""The targeting pages' routes on both backends: PMT models (fit, approve, activate), means tests and
background jobs; who may do what (403), maker-checker (409), bad input named in the form (422)."""

from __future__ import annotations

import re
from datetime import date

from isps.db import transaction
from isps.services import jobs
from isps.targeting import alternative, pmt
from tests.test_web import as_user, denied, post, scalar, sign_in, text_of

THROUGH = date(2026, 11, 1)


def finished(response) -> jobs.Job:
    """The background job a form started (the redirect names it), once it is over."""
    assert response.status_code == 303, response.text
    job_id = re.fullmatch(r"/jobs/([0-9a-f]+)", response.headers["location"]).group(1)
    job = jobs.wait(job_id, timeout=120)
    assert job is not None and job.over, job
    return job


def draft_by(engine, maker: str) -> int:
    """A hand-made draft model (the shipped weights) made by ``maker``: fitting needs more surveyed
    households than the 600 of the test province, and approval does not care how a model was made."""
    with transaction(engine) as s:
        return pmt.create_model(s, pmt.shipped_specs()[0], actor=maker).id


def test_district_roles_are_refused_and_auditors_only_read(client, province):
    model_id = draft_by(province, "manager")
    as_user(client, "lahore_officer")
    for url in ("/pmt", f"/pmt/models/{model_id}", "/means-tests", "/simulator"):
        assert client.get(url).status_code == 403, url
    assert post(client, "/pmt/fit", estimator="ols", coverage="20", holdout="30").status_code == 403
    assert post(client, f"/pmt/models/{model_id}/approve").status_code == 403
    assert post(client, "/means-tests/run", method="electricity", through="2026-11", months="3").status_code == 403
    assert denied(province, "lahore_officer", "approve") == 1 and denied(province, "lahore_officer", "fit") == 1

    as_user(client, "auditor")
    page = client.get("/pmt")
    assert page.status_code == 200 and 'id="fit-form"' not in page.text and f'data-model="{model_id}"' in page.text
    assert 'id="approve-form"' not in client.get(f"/pmt/models/{model_id}").text
    assert post(client, f"/pmt/models/{model_id}/approve").status_code == 403
    assert post(client, f"/pmt/models/{model_id}/activate").status_code == 403
    assert scalar(province, "SELECT approved_by FROM pmt_model WHERE id = :m", m=model_id) is None


def test_a_second_person_approves_and_activation_rescores_every_household(client, province):
    model_id = draft_by(province, "manager")
    households = scalar(province, "SELECT COUNT(*) FROM household")
    as_user(client, "manager")
    page = client.get(f"/pmt/models/{model_id}").text
    assert 'id="approve-form"' not in page and "you cannot approve it" in text_of(page)
    # activation before approval: refused, nothing re-scored
    early = post(client, f"/pmt/models/{model_id}/activate")
    assert early.status_code == 409 and "not approved" in text_of(early.text)
    # the maker approving her own model: a clear 409, audited, nothing recorded
    own = post(client, f"/pmt/models/{model_id}/approve")
    assert own.status_code == 409
    assert "A second person must approve: manager made this model" in text_of(own.text)
    assert denied(province, "manager", "approve") == 1
    assert scalar(province, "SELECT approved_by FROM pmt_model WHERE id = :m", m=model_id) is None

    as_user(client, "admin")
    assert f'data-todo="approve" data-id="{model_id}"' in client.get("/pmt").text
    ok = post(client, f"/pmt/models/{model_id}/approve")
    assert ok.status_code == 303 and ok.headers["location"] == f"/pmt/models/{model_id}?done=approved"
    assert post(client, f"/pmt/models/{model_id}/approve").status_code == 409  # approved already

    as_user(client, "manager")
    page = client.get(f"/pmt/models/{model_id}").text
    assert 'id="activate-form"' in page and f"{households:,} households" in text_of(page)
    job = finished(post(client, f"/pmt/models/{model_id}/activate"))
    assert job.state == "done", job.error
    assert job.result["next"] == f"/pmt/models/{model_id}?done=activated"
    status = client.get(f"/jobs/{job.id}/status", headers={"HX-Request": "true"})
    assert status.headers["HX-Redirect"] == job.result["next"]
    # a job over before its page was asked for: the page sends the browser straight on
    over = client.get(f"/jobs/{job.id}", follow_redirects=False)
    assert over.status_code == 303 and over.headers["location"] == job.result["next"]
    with transaction(province) as s:
        assert pmt.active_model(s).id == model_id
    assert scalar(province, "SELECT COUNT(*) FROM pmt_score WHERE model_id = :m", m=model_id) == households
    assert scalar(province, "SELECT COUNT(*) FROM audit_log WHERE action = 'activate' AND entity_id = :m "
                            "AND outcome = 'ok'", m=model_id) == 1
    again = post(client, f"/pmt/models/{model_id}/activate")
    assert again.status_code == 409 and "already in force" in text_of(again.text)


def test_bad_fit_input_is_named_in_the_form_and_a_refused_fit_says_why(client, province):
    as_user(client, "manager")
    before = scalar(province, "SELECT COUNT(*) FROM pmt_model")
    bad = post(client, "/pmt/fit", estimator="magic", coverage="lots", holdout="90")
    assert bad.status_code == 422
    words = text_of(bad.text)
    assert "Choose an estimator" in words and "from 1 to 99" in words and "from 10 to 50" in words
    assert 'aria-invalid="true"' in bad.text and 'value="lots"' in bad.text
    for coverage in ("nan", "1e400", "0", "-5"):
        assert post(client, "/pmt/fit", estimator="ols", coverage=coverage, holdout="30").status_code == 422
    # the 600-household province has too few surveyed urban households to estimate: refused in words
    job = finished(post(client, "/pmt/fit", estimator="quantile", coverage="20", holdout="30"))
    assert job.state == "failed" and "too few to estimate" in job.error
    page = client.get(f"/jobs/{job.id}").text
    assert "too few to estimate" in text_of(page) and 'hx-trigger="every 1s"' not in page
    compared = finished(post(client, "/pmt/evaluate", estimator="", coverage="20", holdout="30"))
    assert compared.state == "failed" and "too few to estimate" in compared.error
    assert post(client, "/pmt/evaluate", coverage="200", holdout="30").status_code == 422
    assert scalar(province, "SELECT COUNT(*) FROM pmt_model") == before
    assert denied(province, "manager", "fit") == 1
    unknown = client.get("/jobs/0123456789abcdef")
    assert unknown.status_code == 404 and "does not know" in text_of(unknown.text)
    assert client.get("/pmt/models/999999").status_code == 404
    assert client.get("/pmt/models/abc").status_code in (400, 404, 422)


def test_a_means_test_is_run_in_the_browser_and_its_decisions_counted_by_district(client, province):
    with transaction(province) as s:
        alternative.generate_electricity(s, THROUGH, 6, 0)
    as_user(client, "manager")
    page = client.get("/means-tests")
    assert page.status_code == 200 and 'id="run-form"' in page.text
    bad = post(client, "/means-tests/run", method="gas", through="November", months="40", threshold="-1")
    assert bad.status_code == 422
    words = text_of(bad.text)
    for phrase in ("Choose a test", "written YYYY-MM", "from 1 to 12 months", "a number of 0 or more"):
        assert phrase in words, phrase
    assert scalar(province, "SELECT COUNT(*) FROM means_test_run") == 0

    job = finished(post(client, "/means-tests/run", method="electricity", through="2026-11", months="3",
                        threshold=""))
    assert job.state == "done", job.error
    run_id = job.result["run_id"]
    eligible = scalar(province, "SELECT COUNT(*) FROM means_test_result WHERE run_id = :r AND status = 'eligible'",
                      r=run_id)
    run_page = client.get(f"/means-tests/runs/{run_id}").text
    assert f'data-eligible="{eligible}"' in run_page and "Lahore" in text_of(run_page)
    listing = client.get("/means-tests").text
    assert f'data-run="{run_id}"' in listing and 'data-method="electricity_means_test"' in listing
    evaluation = client.get("/means-tests/evaluation", params={"through": "2026-11", "share": "20"})
    assert evaluation.status_code == 200 and 'data-method="electricity_means_test"' in evaluation.text
    assert client.get("/means-tests/evaluation", params={"through": "soon"}).status_code == 422
    csv = client.get("/means-tests", params={"format": "csv", "list": "runs"})
    assert csv.status_code == 200 and str(run_id) in csv.text


def test_the_simulator_page_opens_without_simulating_and_its_results_come_by_htmx(client, province):
    as_user(client, "manager")
    shell = client.get("/simulator", params={"cutoffs": "30, 35"})
    assert shell.status_code == 200 and 'hx-trigger="load"' in shell.text and 'id="sim-totals"' not in shell.text
    assert "/simulator/results?program=bisp_kafaalat&amp;cutoffs=30%2C+35" in shell.text
    # asked for by the form: the address follows what is shown; by the page's load: it does not move
    from_form = client.get("/simulator/results", params={"cutoffs": "30, 35"},
                           headers={"HX-Request": "true", "HX-Trigger": "sim-form"})
    assert from_form.status_code == 200 and from_form.headers["HX-Push-Url"].startswith("/simulator?program=")
    assert from_form.text.count("<tr data-scenario=") == 2
    on_load = client.get("/simulator/results", headers={"HX-Request": "true", "HX-Trigger": "sim-results"})
    assert "HX-Push-Url" not in on_load.headers
    # bad input: a 422 to a plain request, the message swapped into the page for htmx (htmx drops 4xx bodies)
    assert client.get("/simulator/results", params={"poor_share": "abc"}).status_code == 422
    bad = client.get("/simulator/results", params={"poor_share": "abc"}, headers={"HX-Request": "true"})
    assert bad.status_code == 200 and 'id="sim-error"' in bad.text and "must be numbers" in text_of(bad.text)
    as_user(client, "auditor")
    assert client.get("/simulator/results").status_code == 403
