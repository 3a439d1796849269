"""Decoding: the search, the SavedModel export, and the stages that translate through them."""
