/** What `scaibunker certify` runs the provider conformance suite on (passed to its test process as JSON). */
export interface CertifyConfig {
  /** The isolations to certify ('container', 'microvm', 'proot'). */
  isolations: Array<'container' | 'microvm' | 'proot'>;
  containerRuntime: 'auto' | 'crun' | 'runc' | 'docker';
  dockerHost?: string;
  vmm: 'qemu' | 'firecracker';
  firecrackerBin?: string;
  /** Plugin provider modules (absolute paths), each replacing the built-in of its isolation. */
  providerModules: string[];
  /** The image bunkers run (an ext4 with /.scaibunker/agent). */
  image: { sha256: string; path: string };
}

export const CERTIFY_CONFIG_ENV = 'SCAIBUNKER_CERTIFY_CONFIG';
