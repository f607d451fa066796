/**
 * The Blob container client of the poison store, in a module of its own: @azure/storage-blob is a
 * third of the bundle and is needed only when the forwarder's last attempt fails, so the build puts
 * it in `dist/blob-client.js`, loaded on that first use (scripts/build.mjs), not at start-up.
 */
import type { TokenCredential } from '@azure/identity';
import { BlobServiceClient, type ContainerClient } from '@azure/storage-blob';

export function createContainerClient(
  endpoint: string,
  containerName: string,
  credential: TokenCredential,
  retryBaseDelayMs: number,
): ContainerClient {
  // Storage clients take their own retry shape (tries, not retries).
  return new BlobServiceClient(endpoint, credential, {
    retryOptions: {
      maxTries: 4,
      retryDelayInMs: retryBaseDelayMs,
      maxRetryDelayInMs: Math.max(retryBaseDelayMs * 16, 1000),
    },
  }).getContainerClient(containerName);
}
