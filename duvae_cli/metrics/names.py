"""The names of the metrics `duvae evaluate` writes, in the order it shows them (a leaf: tables read
it without importing torch)."""

ORDER = ("iw_nll", "iw_ppl", "elbo_nll", "ppl", "rec", "kl", "mi", "au", "mpd", "ce", "n_examples", "n_tokens")
