// Image vulnerability scanning: pick a scanner with chooseScanner(), then scan(image).

export { cvss3BaseScore } from './Cvss3.js';
export { chooseScanner, findOnPath } from './chooseScanner.js';
export { DirRootfsReader } from './DirRootfsReader.js';
export { Ext4RootfsReader } from './Ext4RootfsReader.js';
export { extractExt4 } from './extractExt4.js';
export { type AdvisoryMatch, OsvAdvisories } from './OsvAdvisories.js';
export { DEFAULT_READ_LIMITS, type RootfsEntry, type RootfsReader, type RootfsReadLimits, UnsafeRootfsPathError } from './RootfsReader.js';
export { collectSbom, type InstalledPackage, type Sbom } from './Sbom.js';
export { NO_ADVISORIES_NOTE, SbomScanner } from './SbomScanner.js';
export type { ScannedImage, Scanner, ScanResult, ScanVulnerability, SeverityCounts } from './Scanner.js';
export { mapTrivyReport, TrivyScanner } from './TrivyScanner.js';
