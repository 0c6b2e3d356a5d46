"""keygate-keygen: a new Ed25519 key pair for a KeyGate API key (docs/signing.md, "Key types").

Writes the private key as unencrypted PKCS#8 PEM to a new file readable by its
owner only (mode 0600; an existing file is never overwritten unless --force),
and prints the public key in both forms KeyGate takes, PEM SubjectPublicKeyInfo
and base64 of the 32 raw bytes (--public-format picks one, for `> key.pub`). Create the key with the public key; the
private key never leaves this machine. Needs the `ed25519` extra (cryptography).
"""

from __future__ import annotations

import argparse
import errno
import os
import secrets
import sys
from collections.abc import Sequence

from keygate_client._kg1 import ed25519

DEFAULT_PATH = "keygate-ed25519.pem"
EXIT_USAGE = 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="keygate-keygen",
        description="Write a new Ed25519 private key (mode 0600) and print its public key for KeyGate.")
    parser.add_argument("-o", "--out", default=DEFAULT_PATH, metavar="PATH",
                        help=f"the private key file to create (default {DEFAULT_PATH})")
    parser.add_argument("--force", action="store_true", help="replace the file if it exists")
    parser.add_argument("--public-format", choices=("both", "pem", "base64"), default="both",
                        help="the public key's form on standard output: PEM, base64 of the 32 raw bytes, or both "
                             "(default both, one after the other)")
    return parser


def write_private_key(path: str, pem: str, *, force: bool) -> None:
    """Write `pem` to a new file of mode 0600, created so before a byte of the key is written (no umask window).

    Without `force` an existing `path` (or symlink) is refused. With it, the key goes to a new file beside
    `path` that then replaces it by a rename: whoever still holds the old file open, or a hard link to it,
    never reads the new key, and a failure leaves the old file as it was.
    """
    if not force:
        _create(path, pem)
        return
    if os.path.islink(path):  # the key would land beside the link, not where it points
        raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)
    directory, name = os.path.split(os.path.abspath(path))
    staged = os.path.join(directory, f".{name}.{secrets.token_hex(8)}.tmp")
    _create(staged, pem)
    try:
        os.replace(staged, path)
    except BaseException:
        os.unlink(staged)  # never leave a copy of the key behind
        raise


def _create(path: str, pem: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o600)
    try:
        with os.fdopen(descriptor, "w", encoding="ascii") as file:
            file.write(pem)
            file.flush()
            os.fsync(file.fileno())
    except BaseException:
        os.unlink(path)  # created by this call (O_EXCL): never leave part of a key behind
        raise


def main(argv: Sequence[str] | None = None) -> int:
    arguments = _parser().parse_args(argv)
    try:
        key = ed25519.generate_private_key()
    except ImportError as error:
        print(f"keygate-keygen: {error}", file=sys.stderr)
        return EXIT_USAGE
    try:
        write_private_key(arguments.out, ed25519.private_key_pem(key), force=arguments.force)
    except FileExistsError:
        print(f"keygate-keygen: {arguments.out} exists; choose another --out, or --force to replace it",
              file=sys.stderr)
        return EXIT_USAGE
    except OSError as error:
        print(f"keygate-keygen: cannot write {arguments.out}: {error.strerror}", file=sys.stderr)
        return EXIT_USAGE
    public = ed25519.public_key_of(key)
    print(f"# private key written to {arguments.out} (mode 0600); keep it there, never send it", file=sys.stderr)
    form = arguments.public_format
    print({"both": "# public key for KeyGate, either form (PEM SubjectPublicKeyInfo, or base64 of the 32 raw bytes):",
           "pem": "# public key for KeyGate (PEM SubjectPublicKeyInfo):",
           "base64": "# public key for KeyGate (base64 of the 32 raw bytes):"}[form], file=sys.stderr)
    if form in ("both", "pem"):
        sys.stdout.write(ed25519.public_key_pem(public))
    if form in ("both", "base64"):
        print(ed25519.public_key_base64(public))
    print(f"# fingerprint (the app's passkey confirmation shows it: compare before you confirm): "
          f"{ed25519.fingerprint(public)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
