/** The bundle's entry (package.json `main`): importing each function file registers it. */
import './auditLogForwarder';
import './keyDeletionResponder';
import './monitorAlert';
import './reconcilePosture';
import './replay';
import './sweepDeletedKeys';
