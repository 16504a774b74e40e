"""A KServe ModelServer (PyPI `kserve`) hosting ONNX models through onnxruntime: the peer
server that no one here wrote, for interop and load comparisons.

    python kserve_peer.py --model lenet5=fixtures/lenet5/model.onnx --http_port 18080 --grpc_port 18081
"""
import argparse
import os
import uuid

import numpy as np
import onnxruntime as ort
from kserve import InferOutput, InferRequest, InferResponse, Model, ModelServer


class OnnxModel(Model):
    def __init__(self, name: str, path: str, threads: int):
        super().__init__(name)
        self.path = path
        self.threads = threads
        self.load()

    def load(self) -> bool:
        so = ort.SessionOptions()
        if self.threads > 0:
            so.intra_op_num_threads = self.threads
        self.sess = ort.InferenceSession(self.path, so, providers=["CPUExecutionProvider"])
        self.input_name = self.sess.get_inputs()[0].name
        self.output_names = [o.name for o in self.sess.get_outputs()]
        self.ready = True
        return self.ready

    @staticmethod
    def _types(args):
        def dim(d):
            return d if isinstance(d, int) else -1
        return [{"name": a.name, "datatype": "FP32", "shape": [dim(d) for d in a.shape]} for a in args]

    def get_input_types(self):
        return self._types(self.sess.get_inputs())

    def get_output_types(self):
        return self._types(self.sess.get_outputs())

    def predict(self, payload: InferRequest, headers=None, response_headers=None) -> InferResponse:
        x = payload.inputs[0].as_numpy().astype(np.float32, copy=False)
        outs = self.sess.run(None, {self.input_name: x})
        binary = payload.use_binary_outputs
        outputs = []
        for name, o in zip(self.output_names, outs):
            out = InferOutput(name=name, shape=list(o.shape), datatype="FP32")
            out.set_data_from_numpy(np.ascontiguousarray(o, dtype=np.float32), binary_data=binary)
            outputs.append(out)
        return InferResponse(
            response_id=payload.id or str(uuid.uuid4()),
            model_name=self.name,
            infer_outputs=outputs,
            use_binary_outputs=binary,
        )


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", action="append", required=True, help="NAME=PATH.onnx")
    p.add_argument("--http_port", type=int, default=18080)
    p.add_argument("--grpc_port", type=int, default=18081)
    p.add_argument("--threads", type=int, default=int(os.environ.get("PEER_THREADS", "0")))
    args = p.parse_args()
    models = []
    for spec in args.model:
        name, path = spec.split("=", 1)
        models.append(OnnxModel(name, path, args.threads))
    ModelServer(http_port=args.http_port, grpc_port=args.grpc_port, workers=1).start(models)


if __name__ == "__main__":
    main()
