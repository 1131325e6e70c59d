/* Installed as libsysdb.so in the Gramine stand-in, where Gramine has its
 * library OS: a small real shared object whose hash goes into manifests as
 * loader.entrypoint.sha256. The stand-in loader never loads it. */

const char standin_sysdb_identity[] = "gramine stand-in libsysdb (test double, not Gramine)";

const char *standin_sysdb_name(void) { return standin_sysdb_identity; }
