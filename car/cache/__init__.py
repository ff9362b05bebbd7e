"""Cached builds (the processcache seed, 003): a build command traced, its inputs and outputs recorded, and skipped
while its inputs stay the same (`accesses`: what a traced command read and wrote; `store`: the cache folder, files by
content; `builds`: the decision, and `car build`'s outcomes)."""
