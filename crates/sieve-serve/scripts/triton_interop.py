"""tritonclient (HTTP and gRPC, PyPI) against a running `sieve serve`: health, metadata and
inference with JSON and binary tensors; outputs compared with the reference file and with
each other. Exits non-zero on any mismatch. Prints 'N passed, N failed'.

    python triton_interop.py --http 127.0.0.1:18000 --grpc 127.0.0.1:18001 --model lenet5 \
        --input fixtures/lenet5/reference/input_uint8.npy --reference fixtures/lenet5/reference/output.npy
"""
import argparse
import sys
import traceback

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

RESULTS = []


def check(name, fn):
    try:
        fn()
        RESULTS.append((name, True))
        print(f"ok   {name}")
    except Exception:  # noqa: BLE001 - report every failure, keep going
        RESULTS.append((name, False))
        print(f"FAIL {name}")
        traceback.print_exc()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--http", required=True)
    p.add_argument("--grpc", required=True)
    p.add_argument("--model", required=True)
    p.add_argument("--input", required=True)
    p.add_argument("--reference", required=True)
    p.add_argument("--sieve-output", help=".npy written by `sieve infer` on the same input")
    p.add_argument("--batch", type=int, default=8)
    a = p.parse_args()
    x = np.load(a.input)[: a.batch].astype(np.float32)
    ref = np.load(a.reference)[: a.batch]
    sieve_out = np.load(a.sieve_output)[: a.batch] if a.sieve_output else None
    h = httpclient.InferenceServerClient(url=a.http)
    g = grpcclient.InferenceServerClient(url=a.grpc)
    outputs = {}

    def health_http():
        assert h.is_server_live() and h.is_server_ready() and h.is_model_ready(a.model)
        assert not h.is_model_ready("no_such_model")

    def health_grpc():
        assert g.is_server_live() and g.is_server_ready() and g.is_model_ready(a.model)

    def metadata_http():
        m = h.get_model_metadata(a.model)
        assert m["inputs"][0]["datatype"] == "FP32", m
        assert m["inputs"][0]["shape"][1:] == list(x.shape[1:]), m
        s = h.get_server_metadata()
        assert "binary_tensor_data" in s["extensions"], s

    def metadata_grpc():
        m = g.get_model_metadata(a.model)
        assert m.inputs[0].datatype == "FP32"
        assert list(m.inputs[0].shape[1:]) == list(x.shape[1:])

    def infer_http(binary_in, binary_out):
        def run():
            meta = h.get_model_metadata(a.model)
            inp = httpclient.InferInput(meta["inputs"][0]["name"], list(x.shape), "FP32")
            inp.set_data_from_numpy(x, binary_data=binary_in)
            out_name = meta["outputs"][0]["name"]
            req_out = httpclient.InferRequestedOutput(out_name, binary_data=binary_out)
            r = h.infer(a.model, [inp], outputs=[req_out], request_id="interop-1")
            y = r.as_numpy(out_name)
            assert r.get_response()["id"] == "interop-1"
            outputs[f"http in={binary_in} out={binary_out}"] = y
            np.testing.assert_allclose(y, ref, atol=1e-4, rtol=0)

        return run

    def infer_grpc():
        meta = g.get_model_metadata(a.model)
        inp = grpcclient.InferInput(meta.inputs[0].name, list(x.shape), "FP32")
        inp.set_data_from_numpy(x)
        r = g.infer(a.model, [inp])
        y = r.as_numpy(meta.outputs[0].name)
        outputs["grpc"] = y
        np.testing.assert_allclose(y, ref, atol=1e-4, rtol=0)

    def bad_requests():
        inp = httpclient.InferInput("input", [1, 3], "FP32")
        inp.set_data_from_numpy(np.zeros((1, 3), np.float32))
        for client, mod in ((h, "http"), (g, "grpc")):
            if mod == "grpc":
                inp = grpcclient.InferInput("input", [1, 3], "FP32")
                inp.set_data_from_numpy(np.zeros((1, 3), np.float32))
            try:
                client.infer(a.model, [inp])
            except InferenceServerException as e:
                msg = str(e)
                assert "shape" in msg, msg
                if mod == "grpc":
                    assert "INVALID_ARGUMENT" in str(e.status()), e.status()
                else:
                    assert e.status() == "400", e.status()
            else:
                raise AssertionError(f"{mod}: wrong shape accepted")

    def all_agree():
        base = outputs["grpc"]
        for k, v in outputs.items():
            np.testing.assert_array_equal(v, base, err_msg=k)
        if sieve_out is not None:
            np.testing.assert_allclose(base, sieve_out, atol=1e-5, rtol=0)

    check("http health", health_http)
    check("grpc health", health_grpc)
    check("http metadata", metadata_http)
    check("grpc metadata", metadata_grpc)
    for bi in (False, True):
        for bo in (False, True):
            check(f"http infer binary_in={bi} binary_out={bo}", infer_http(bi, bo))
    check("grpc infer (raw_output_contents)", infer_grpc)
    check("malformed requests answered 400 / INVALID_ARGUMENT", bad_requests)
    check("every protocol gives the same outputs" + (" as sieve infer" if sieve_out is not None else ""), all_agree)
    passed = sum(ok for _, ok in RESULTS)
    failed = len(RESULTS) - passed
    print(f"{passed} passed, {failed} failed")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
