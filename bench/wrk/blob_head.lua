-- HEAD a blob. wrk 4.1 does not know that a HEAD response has no body: with a non-zero
-- Content-Length it waits for bytes that never come. So the benchmark HEADs the empty blob
-- (Content-Length: 0); the server does the same lookup as for any other blob.
wrk.method = "HEAD"
