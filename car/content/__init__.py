"""Files by the SHA-256 of their content: hashing, and the cache folder's blobs, shared by cached builds
(car.cache), `car train`, `car sync` (which files differ) and `car flash` (compiled firmware). It imports nothing
else of car, so `tools` may use it."""
