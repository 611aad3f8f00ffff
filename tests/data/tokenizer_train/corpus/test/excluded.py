# This directory is excluded from training with --exclude-dir test.
def test_zzzqqq_never_learned():
    assert zzzqqqzzzqqq == zzzqqqzzzqqq
