package controller

import "container/heap"

// placer picks where Plan puts an app: the least loaded allowed host among
// the live ones with an agent, ties by name. The live hosts are kept in a
// heap ordered by (load, name), so that a plan for thousands of apps over
// thousands of hosts costs O(apps · log hosts), and an app restricted to a
// few hosts (relocvol.hosts) looks at those few only.
type placer struct {
	load map[string]int
	heap hostHeap
}

func newPlacer(live []string, load map[string]int) *placer {
	p := &placer{load: load, heap: hostHeap{load: load, at: make(map[string]int, len(live))}}
	for _, h := range live {
		p.heap.at[h] = len(p.heap.names)
		p.heap.names = append(p.heap.names, h)
	}
	heap.Init(&p.heap)
	return p
}

// pick returns the host for an app allowed on allowed (any when empty),
// or "" when none is live.
func (p *placer) pick(allowed []string) string {
	if len(allowed) == 0 {
		if len(p.heap.names) == 0 {
			return ""
		}
		return p.heap.names[0]
	}
	best := ""
	for _, h := range allowed {
		if _, live := p.heap.at[h]; live && (best == "" || p.heap.before(h, best)) {
			best = h
		}
	}
	return best
}

// add changes host's load by n.
func (p *placer) add(host string, n int) {
	p.load[host] += n
	if i, live := p.heap.at[host]; live {
		heap.Fix(&p.heap, i)
	}
}

// hostHeap is a container/heap of host names by (load, name), with each
// name's index, for heap.Fix.
type hostHeap struct {
	names []string
	at    map[string]int
	load  map[string]int
}

func (h *hostHeap) before(a, b string) bool {
	if h.load[a] != h.load[b] {
		return h.load[a] < h.load[b]
	}
	return a < b
}

func (h *hostHeap) Len() int           { return len(h.names) }
func (h *hostHeap) Less(i, j int) bool { return h.before(h.names[i], h.names[j]) }
func (h *hostHeap) Swap(i, j int) {
	h.names[i], h.names[j] = h.names[j], h.names[i]
	h.at[h.names[i]], h.at[h.names[j]] = i, j
}

// Push and Pop complete heap.Interface; the set of live hosts is fixed
// for a plan, so they are never called.
func (h *hostHeap) Push(any) { panic("hostHeap: Push") }
func (h *hostHeap) Pop() any { panic("hostHeap: Pop") }
