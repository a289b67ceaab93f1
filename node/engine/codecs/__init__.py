"""Column codecs of the block format (docs/format/encoding.md); node/engine/encoding.py is the
public entry point. One module per column kind:

- base: BlockFormatError, column encoding ids, bounds-checked reader, zstd contexts
- planes: byte-plane storage of uint64 streams at the narrowest width (shared by all kinds)
- integers: timestamps, integer and unsigned fields (delta / delta-of-delta, zigzag)
- floats: decimal-scaled integers when exact, else XOR with the previous value
- booleans: one bit per value
- strings: length-prefixed UTF-8
- legacy: codec 1, read-only
"""

__all__: list[str] = []
