"""moto_server for a stack with IAM enforced (`make demo`), with one fix to its SigV4 check.

moto checks a request's signature against the form body as it re-encodes it from the
parsed parameters, with `+` for a space (werkzeug has consumed the bytes by then). AWS
checks the bytes that were sent, and the Rust SDK sends a space as `%20`, so every call
with a space in a parameter (an SNS alert's text) fails with SignatureDoesNotMatch on
moto only. Here a form body that fails that check is checked once more, encoded as
RFC 3986 percent-encoding (the SDK's); a wrong key or secret still fails both.
Arguments are moto_server's.
"""

import sys
from urllib.parse import quote, urlencode

from moto.iam import access_control
from moto.server import main

Base = access_control.IAMRequestBase
_create_aws_request = Base._create_aws_request
_check_signature = Base.check_signature


def create_aws_request(self):
    request = _create_aws_request(self)
    if getattr(self, "_rfc3986_form", False) and not self._body and isinstance(self._data, dict):
        request.data = urlencode(self._data, doseq=True, quote_via=quote)
    return request


def check_signature(self):
    try:
        _check_signature(self)
    except Exception:
        if self._body or not isinstance(self._data, dict):
            raise
        self._rfc3986_form = True
        _check_signature(self)


Base._create_aws_request = create_aws_request
Base.check_signature = check_signature

if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
