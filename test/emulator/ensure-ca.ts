/** Creates the emulator's CA if it does not exist yet and prints its path (used before Node starts). */
import { ensureCertificateAuthority } from './ca';

process.stdout.write(`${ensureCertificateAuthority().certPath}\n`);
