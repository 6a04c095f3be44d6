// Attach an artifact to an image with @sigstore/oci, the OCI client npm's provenance publishing uses.
//   node attach.mjs <host:port/repository> <tag> <artifact media type> <artifact file>
// Credentials come from PORTSIDE_USER / PORTSIDE_PASSWORD; prints {"image": digest, "artifact": descriptor}.
import { readFileSync } from 'node:fs';
import { attachArtifactToImage, getImageDigest } from '@sigstore/oci';

const [imageName, tag, mediaType, file] = process.argv.slice(2);
const credentials = { username: process.env.PORTSIDE_USER, password: process.env.PORTSIDE_PASSWORD };

try {
  const imageDigest = await getImageDigest({ imageName, imageTag: tag, credentials });
  const artifact = await attachArtifactToImage({
    imageName, imageDigest, credentials, mediaType, artifact: readFileSync(file),
    annotations: { 'dev.portside.test': 'attached' },
  });
  console.log(JSON.stringify({ image: imageDigest, artifact }));
} catch (err) {
  // OCIError keeps the HTTP failure in `cause`: show the whole chain.
  for (let e = err; e; e = e.cause) console.error(String(e.stack || e));
  process.exit(1);
}
