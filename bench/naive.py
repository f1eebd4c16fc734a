"""The study demo's naive service, for ``python -m bench`` to compare against.

One photo per synchronous HTTP request, decoded whole at full size by Pillow, the model
eager in float32 with a batch of one; no queue, no database. Run by the bench as
``python -m bench.naive --port P`` and stopped by it.
"""

from __future__ import annotations

import argparse
import io

from fastapi import FastAPI, UploadFile
from PIL import Image

from pawdex.model_names import DEFAULT_MODEL


def create_app(model_name: str, device: str = "cpu") -> FastAPI:
    from pawdex.ml import load_classifier

    model = load_classifier(model_name, device=device, runtime="torch")
    model.load()  # before the port opens: /healthz answers once the model is ready
    app = FastAPI(title="pawdex naive demo")

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok", "device": str(model.device)}

    @app.post("/predict")
    def predict(file: UploadFile) -> dict:
        img = Image.open(io.BytesIO(file.file.read())).convert("RGB")  # full-size decode
        prediction = model.predict_tensors(model.preprocess(img).unsqueeze(0))[0]
        return {
            "species": prediction.species,
            "breed": prediction.breed,
            "confidence": prediction.confidence,
        }

    return app


def main(argv: list[str] | None = None) -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    app = create_app(args.model, args.device)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
