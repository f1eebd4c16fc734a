"""What the OpenAPI schema promises is what the API answers (regressions found by fuzzing,
tests/integration/test_fuzz.py)."""

from __future__ import annotations

from tests.factories import jpeg_bytes


def test_csv_export_of_a_bad_query_is_a_400_before_any_row(eager_client):
    # Found by schemathesis: the CSV stream failed after its 200 had been sent.
    response = eager_client.get("/v1/photos", params={"format": "csv", "model_version": "nope"})
    assert response.status_code == 400
    assert response.json() == {"detail": "unknown model_version 'nope'"}


def test_an_empty_model_version_means_the_active_model(eager_client):
    eager_client.post("/v1/images", files={"file": ("a.jpg", jpeg_bytes(seed=60))})
    active = eager_client.get("/v1/breeds").json()
    assert eager_client.get("/v1/breeds", params={"model_version": ""}).json() == active
    page = eager_client.get("/v1/photos", params={"model_version": ""})
    assert page.status_code == 200 and len(page.json()["items"]) == 1
    animal_id = page.json()["items"][0]["id"]
    assert eager_client.get(f"/v1/photos/{animal_id}?model_version=").status_code == 200


def test_an_upload_needs_at_least_one_file(eager_client):
    schema = eager_client.get("/openapi.json").json()["components"]["schemas"]
    assert schema["Body_upload_images_v1_images_post"]["properties"]["file"]["minItems"] == 1
    response = eager_client.post("/v1/images", data={"other": "x"}, files=[])
    assert response.status_code == 422


def test_every_error_answer_is_documented(eager_client):
    paths = eager_client.get("/openapi.json").json()["paths"]
    for path, operations in paths.items():
        for method, operation in operations.items():
            codes = set(operation["responses"])
            if path.startswith("/v1/"):
                assert {"400", "401", "429", "422"} <= codes, (method, path, codes)
                assert "Retry-After" in operation["responses"]["429"]["headers"]
    uploads = paths["/v1/archives"]["post"]["responses"]
    assert {"403", "413", "415", "503"} <= set(uploads)
    thumbnail = paths["/v1/images/{image_id}/thumbnail"]["get"]["responses"]["200"]
    assert "image/jpeg" in thumbnail["content"]
    assert "503" in paths["/readyz"]["get"]["responses"]
