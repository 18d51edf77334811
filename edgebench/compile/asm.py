"""Read an LLVM assembly listing of a built TVM library function by function.

The int8 and FP16 checks prove a kernel computes the way its row says by finding the
instructions in that kernel's own body, not anywhere in the library.
"""

from __future__ import annotations


def function_bodies(asm: str) -> dict[str, list[str]]:
    """Instruction lines per function. TVM emits `<name>_compute_` for a kernel's body and
    `__tvm_ffi_<name>` for its wrapper; both are filed under `<name>`."""
    bodies: dict[str, list[str]] = {}
    current = None
    for line in asm.splitlines():
        if line and not line[0].isspace() and line.endswith(":") and not line.startswith("."):
            current = line[:-1].removeprefix("__tvm_ffi_").removesuffix("_compute_")
            bodies.setdefault(current, [])
        elif current and line.strip() and not line.strip().startswith((".", "//", "#")):
            bodies[current].append(line.strip())
    return bodies


def mnemonic(line: str) -> str:
    """An instruction line's mnemonic; an encoding prefix is skipped (the ymm/xmm vpdpbusd of
    an AVX-VNNI CPU is `{vex} vpdpbusd`)."""
    words = [w for w in line.split() if w != "{vex}"]
    return words[0] if words else ""


def functions_using(asm: str, instruction: str) -> set[str]:
    """Names of the functions whose body has `instruction` (as its mnemonic)."""
    return {name for name, lines in function_bodies(asm).items()
            if any(mnemonic(line) == instruction for line in lines)}
