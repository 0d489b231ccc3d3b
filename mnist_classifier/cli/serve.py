"""``mnist-serve``: a web page to draw a digit (or upload a photo) and see what the model answers.

    mnist-serve --model_fn model.pth [--host 127.0.0.1] [--port 8000] [--allowed_hosts a,b] [--docs]

Binds to this machine only unless ``--host`` says otherwise, and answers only requests whose Host
header is an allowed name. With ``model.onnx`` beside the model file (``mnist-export``), onnxruntime
answers once it agrees with the model; PyTorch otherwise. The API's schema is at ``/openapi.json``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

from ..errors import UserError
from . import OneLineParser, run_cli


def build_parser() -> OneLineParser:
    p = OneLineParser(prog="mnist-serve", description=__doc__)
    p.add_argument("--model_fn", required=True, help="a model file written by mnist-train")
    p.add_argument("--host", default="127.0.0.1", help="the address to listen on, IPv6 with or without brackets "
                   "(default: %(default)s)")
    p.add_argument("--port", type=int, default=8000, help="the port (default: %(default)s)")
    p.add_argument("--allowed_hosts", help="the Host names answered, separated by commas ('*' any, '*.example.com' "
                   "its subdomains; no ports); others get 400, against DNS rebinding (default: the --host, with "
                   "localhost and 127.0.0.1 when it is a loopback address, and this machine's names when it is "
                   "0.0.0.0 or ::, where any IP address is answered too)")
    p.add_argument("--docs", action="store_true",
                   help="serve the API pages /docs and /redoc (they load swagger-ui and redoc from a CDN)")
    p.add_argument("--no-export", dest="use_export", action="store_false",
                   help="answer with PyTorch even where an ONNX export lies beside the model file")
    return p


def main(argv: list[str] | None = None) -> None:
    def action():
        args = build_parser().parse_args(argv)
        if not 0 < args.port < 65536:
            raise UserError(f"--port must be between 1 and 65535, got {args.port}")
        try:
            from ..inference import server
        except ImportError as e:
            raise UserError(f"mnist-serve needs the 'serve' extra: pip install 'mnist-classifier[serve]' ({e})") from e
        host = server.unbracketed(args.host)
        allowed = server.allowed_hosts(args.allowed_hosts, host)
        any_address = host in server.WILDCARD_HOSTS
        # One picture at a time is a tiny computation: a second thread would only compete with the
        # server's own work of reading requests and writing answers.
        torch.set_num_threads(1)
        app = server.create_app(Path(args.model_fn), use_export=args.use_export, docs=args.docs,
                                say=lambda note: print(f"mnist-serve: {note}", file=sys.stderr))
        sock = server.listen(host, args.port)  # a port in use is one line, before "Serving"
        hosts = ", ".join(allowed) + (" or any address" if any_address else "")
        print(f"Serving {args.model_fn} on http://{server.bracketed(host)}:{args.port}/ for Host {hosts} "
              "(Ctrl-C stops)", flush=True)
        server.build_server(app, allowed, any_address=any_address).run(sockets=[sock])

    run_cli("mnist-serve", action)


if __name__ == "__main__":
    main()
