/** How long a released address still answers for flows that began before it was released. */
const KEEP_RELEASED_US = 15 * 60 * 1_000_000;

/**
 * Which bunker held a bunker address when a flow began. Conntrack reports a flow when it ends,
 * possibly after its bunker is gone and its /30 went to another bunker; the flow's start time
 * (conntrack timestamps) picks the holder of that moment. Without a start time, the current
 * holder is the best answer.
 */
export class AddressOwners {
  private readonly spans = new Map<string, Array<{ bunkerId: string; fromUs: number; toUs: number | null }>>();

  attached(address: string, bunkerId: string, atUs: number): void {
    const list = this.spans.get(address) ?? [];
    if (list.some((s) => s.bunkerId === bunkerId && s.toUs === null)) return;
    list.push({ bunkerId, fromUs: atUs, toUs: null });
    this.spans.set(address, list);
  }

  detached(address: string, bunkerId: string, atUs: number): void {
    const list = this.spans.get(address);
    for (const s of list ?? []) if (s.bunkerId === bunkerId && s.toUs === null) s.toUs = atUs;
    this.prune(atUs);
  }

  ownerAt(address: string, startUs: number | null): string | undefined {
    const list = this.spans.get(address);
    if (!list?.length) return undefined;
    if (startUs !== null) {
      const hit = list.find((s) => s.fromUs <= startUs && (s.toUs === null || startUs < s.toUs));
      if (hit) return hit.bunkerId;
    }
    return list.find((s) => s.toUs === null)?.bunkerId ?? list.at(-1)?.bunkerId;
  }

  private prune(nowUs: number): void {
    for (const [address, list] of this.spans) {
      const kept = list.filter((s) => s.toUs === null || nowUs - s.toUs < KEEP_RELEASED_US);
      if (kept.length) this.spans.set(address, kept);
      else this.spans.delete(address);
    }
  }
}
