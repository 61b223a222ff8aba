/**
 * Renders a {@link MachineGraph} as Mermaid (`stateDiagram-v2`, for GitHub and docs) or Graphviz
 * DOT (`dot -Tsvg`). Edges read `EVENT [guard] / actions`, delayed ones `after <delay>`, states
 * name the actors they invoke and their entry actions.
 */
import { allStates, type GraphEdge, type GraphState, type MachineGraph } from './graph.js';

/** What to put on the drawing. */
export interface RenderOptions {
  /** Actions on every edge (targetless edges always show theirs: they are all there is). */
  readonly actions: boolean;
}

/** `EVENT [guard] / a, b`. */
export function edgeLabel(edge: GraphEdge, options: RenderOptions): string {
  const guard = edge.guard === null ? '' : ` [${edge.guard}]`;
  const showActions = edge.actions.length > 0 && (options.actions || edge.to.length === 0);
  return `${edge.trigger}${guard}${showActions ? ` / ${edge.actions.join(', ')}` : ''}`;
}

/**
 * What a state box says besides its name: the actors it invokes, its entry actions, and the events
 * it handles without leaving it (targetless transitions: drawn as loops they would bury the states).
 */
function stateNotes(state: GraphState, options: RenderOptions): string[] {
  const notes: string[] = [];
  if (state.invokes.length > 0) notes.push(`invoke ${state.invokes.join(', ')}`);
  if (state.entry.length > 0) notes.push(`entry ${state.entry.join(', ')}`);
  for (const e of state.edges) if (e.to.length === 0) notes.push(`on ${edgeLabel(e, options)}`);
  return notes;
}

/** `spawns connection, adapter actors`: children created by actions, not by a state. */
function spawnNote(graph: MachineGraph): string[] {
  return graph.spawned.length > 0 ? [`spawns ${graph.spawned.join(', ')} actors`] : [];
}

function byId(graph: MachineGraph): Map<string, GraphState> {
  return new Map([graph.root, ...allStates(graph)].map((s) => [s.id, s]));
}

// ---- Mermaid ------------------------------------------------------------------------------------

const mermaidId = (id: string): string => id.replace(/[^A-Za-z0-9_]/g, '_');
// Mermaid reads `;` as a statement end and `:` after the first as text; `#` starts an entity code.
const mermaidText = (text: string): string => text.replace(/[;#]/g, ',').replace(/:/g, '∶');

/** Mermaid `stateDiagram-v2` source. */
export function toMermaid(graph: MachineGraph, options: RenderOptions): string {
  const lines: string[] = ['---', `title: ${graph.id} machine`, '---', 'stateDiagram-v2'];
  const edges: string[] = [];
  const declare = (state: GraphState, indent: string): void => {
    const id = mermaidId(state.id);
    if (state.name !== id) lines.push(`${indent}state "${state.name}" as ${id}`);
    for (const note of stateNotes(state, options)) lines.push(`${indent}${id} : ${mermaidText(note)}`);
    if (state.children.length > 0) {
      lines.push(`${indent}state ${id} {`);
      declareChildren(state, `${indent}  `);
      lines.push(`${indent}}`);
    }
    if (state.type === 'final') edges.push(`  ${id} --> [*]`);
    for (const e of state.edges) {
      const label = mermaidText(edgeLabel(e, options));
      for (const to of e.to) edges.push(`  ${id} --> ${mermaidId(to)} : ${label}`);
    }
  };
  const declareChildren = (parent: GraphState, indent: string): void => {
    if (parent.initial !== null) lines.push(`${indent}[*] --> ${mermaidId(parent.initial)}`);
    // The regions of a parallel state, separated by `--` (Mermaid's concurrency divider).
    parent.children.forEach((child, i) => {
      if (parent.type === 'parallel' && i > 0) lines.push(`${indent}--`);
      declare(child, indent);
    });
  };
  if (graph.root.type === 'parallel') {
    // Mermaid draws regions only inside a composite state: the machine itself is that state.
    const id = mermaidId(`${graph.id}_machine`);
    lines.push(`  state "${graph.id}" as ${id} {`);
    declareChildren(graph.root, '    ');
    lines.push('  }');
    lines.push(`  [*] --> ${id}`);
  } else {
    declareChildren(graph.root, '  ');
  }
  lines.push(...edges);
  // Transitions on the machine itself apply in every state.
  const anchor =
    graph.root.type === 'parallel'
      ? `${graph.id}_machine`
      : (graph.root.initial ?? graph.root.children[0]?.id);
  if (anchor !== undefined) {
    for (const e of graph.root.edges) {
      lines.push(
        `  note right of ${mermaidId(anchor)} : in any state, ${mermaidText(edgeLabel(e, options))}`,
      );
    }
    for (const note of spawnNote(graph)) lines.push(`  note left of ${mermaidId(anchor)} : ${note}`);
  }
  return `${lines.join('\n')}\n`;
}

// ---- DOT ----------------------------------------------------------------------------------------

// DOT strings escape `"`; a line break in a label is the two characters `\n`.
const q = (text: string): string =>
  `"${text.replace(/\\/g, '\\\\').replace(/"/g, '\\"').replace(/\n/g, '\\n')}"`;

/** Graphviz DOT source (`bluez-cm diagram --format dot | dot -Tsvg > machine.svg`). */
export function toDot(graph: MachineGraph, options: RenderOptions): string {
  const states = byId(graph);
  const lines: string[] = [
    `digraph ${q(graph.id)} {`,
    `  label=${q(`${graph.id} machine`)}; labelloc=t; compound=true; rankdir=TB;`,
    '  node [shape=box, style=rounded, fontname="Helvetica", fontsize=11];',
    '  edge [fontname="Helvetica", fontsize=9];',
  ];
  // A compound state is drawn as a cluster; edges to or from it attach to its initial child.
  const anchorOf = (id: string): string => {
    let s = states.get(id);
    while (s !== undefined && s.children.length > 0) s = states.get(s.initial ?? s.children[0]?.id ?? '');
    return s?.id ?? id;
  };
  const cluster = (id: string): string => `cluster_${id}`;
  const declare = (state: GraphState, indent: string): void => {
    if (state.children.length > 0) {
      lines.push(`${indent}subgraph ${q(cluster(state.id))} {`);
      const style = state.type === 'parallel' ? 'dashed' : 'rounded';
      lines.push(
        `${indent}  label=${q([state.name, ...stateNotes(state, options)].join('\n'))}; style=${style};`,
      );
      declareChildren(state, `${indent}  `);
      lines.push(`${indent}}`);
      return;
    }
    const label = [state.name, ...stateNotes(state, options)].join('\n');
    const shape = state.type === 'final' ? ', peripheries=2' : '';
    lines.push(`${indent}${q(state.id)} [label=${q(label)}${shape}];`);
  };
  const declareChildren = (parent: GraphState, indent: string): void => {
    // Every region of a parallel state is active: no initial arrow, each region has its own.
    if (parent.initial !== null && parent.type !== 'parallel') {
      const start = `${parent.id}.[*]`;
      lines.push(`${indent}${q(start)} [shape=point, width=0.12, label=""];`);
      lines.push(`${indent}${q(start)} -> ${q(anchorOf(parent.initial))};`);
    }
    for (const child of parent.children) declare(child, indent);
  };
  declareChildren(graph.root, '  ');
  for (const state of allStates(graph)) {
    for (const e of state.edges) {
      const from = anchorOf(state.id);
      for (const to of e.to) {
        const attrs = [`label=${q(edgeLabel(e, options))}`];
        if (state.children.length > 0) attrs.push(`ltail=${q(cluster(state.id))}`);
        if ((states.get(to)?.children.length ?? 0) > 0 && to !== state.id)
          attrs.push(`lhead=${q(cluster(to))}`);
        lines.push(`  ${q(from)} -> ${q(anchorOf(to))} [${attrs.join(', ')}];`);
      }
    }
  }
  const notes = [
    ...graph.root.edges.map((e) => `in any state: ${edgeLabel(e, options)}`),
    ...spawnNote(graph),
  ];
  if (notes.length > 0) lines.push(`  "notes" [shape=note, label=${q(notes.join('\n'))}];`);
  lines.push('}');
  return `${lines.join('\n')}\n`;
}
