# expect: error
# says: File too large
# RLIMIT_FSIZE caps files even inside the scratch directory
with open("big.bin", "wb") as f:
    f.write(b"0" * (100 << 20))
