import * as path from 'node:path';
import { parseArgs } from 'node:util';
import { Command } from '../command';
import { ScalpelError } from '../../engine/errors';
import { checkDeviceId, parseExecutionProviders, usesAccelerator } from '../../engine/runtime';
import { positiveInt } from './eval';

const usage = `scalpel k8s SPEC --shards N --image IMAGE [options]

Prints Kubernetes manifests that evaluate SPEC in N shards and merge them: an Indexed Job (one pod
per shard; each runs scalpel eval SPEC --shard N, its index from JOB_COMPLETION_INDEX, and a failed
index is retried on its own) and a merge Job to apply once it completes. Both mount one volume
holding the spec, model and catalog (the pods' working directory) and receiving the parts.
See docs/scale.md.

  --shards N           shards (the Job's completions)
  --image IMAGE        a container image whose entrypoint is scalpel (docs/scale.md has a Dockerfile)
  --name NAME          the Job's name (default: scalpel- and the spec's file name)
  --parallelism P      pods at a time (default N)
  --retries R          retries per shard (backoffLimitPerIndex, default 2)
  --claim NAME         the PersistentVolumeClaim to mount (default scalpel-data)
  --mount DIR          where it is mounted and the pods work (default /scalpel); SPEC is relative to it
  --ep LIST            execution providers for the shards (as scalpel eval --ep); a GPU provider
                       adds a GPU resource limit
  --device-id N        the GPU for cuda and tensorrt inside the pod (default 0)
  --gpu-resource NAME  the GPU resource to request (default nvidia.com/gpu)
  --threads N          onnxruntime threads per shard (pin it for bit-identical merges across node sizes)`;

/** A Kubernetes name: lower-case alphanumerics and '-', starting and ending alphanumeric, at most 63 characters. */
function dnsLabel(text: string): string {
  return text.toLowerCase().replace(/[^a-z0-9-]+/g, '-').replace(/^-+|-+$/g, '').slice(0, 52).replace(/-+$/, '') || 'scalpel';
}

export interface K8sOptions {
  spec: string;
  shards: number;
  image: string;
  name: string;
  parallelism: number;
  retries: number;
  claim: string;
  mount: string;
  executionProviders?: string[];
  deviceId?: number;
  gpuResource: string;
  threads?: number;
}

/** The shard Job and the merge Job, as plain objects (the same as their YAML). */
export function k8sManifests(o: K8sOptions): { shards: object; merge: object } {
  const out = `out/${o.name}/`;
  const runtime = [
    ...(o.executionProviders ? ['--ep', o.executionProviders.join(',')] : []),
    ...(o.deviceId !== undefined ? ['--device-id', String(o.deviceId)] : []),
    ...(o.threads ? ['--threads', String(o.threads)] : []),
  ];
  const labels = { 'app.kubernetes.io/name': 'scalpel', 'app.kubernetes.io/instance': o.name };
  // `kubectl apply -f FILE -l scalpel.dev/step=shards` (then =merge) applies one document of the output.
  const step = (name: string) => ({ ...labels, 'scalpel.dev/step': name });
  const volume = { name: 'data', persistentVolumeClaim: { claimName: o.claim } };
  const mount = { name: 'data', mountPath: o.mount };
  const gpu = usesAccelerator(o.executionProviders) ? { resources: { limits: { [o.gpuResource]: '1' } } } : {};
  const pod = (name: string, args: string[], resources: object) => ({
    metadata: { labels },
    spec: {
      restartPolicy: 'Never',
      containers: [{ name, image: o.image, workingDir: o.mount, args, ...resources, volumeMounts: [mount] }],
      volumes: [volume],
    },
  });
  return {
    shards: {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name: o.name, labels: step('shards') },
      spec: {
        completionMode: 'Indexed',
        completions: o.shards,
        parallelism: o.parallelism,
        // A failed shard is retried on its own; one that fails every retry fails the Job.
        backoffLimitPerIndex: o.retries,
        maxFailedIndexes: 0,
        template: pod('shard', ['eval', o.spec, '--shard', String(o.shards), '--out', out, ...runtime], gpu),
      },
    },
    merge: {
      apiVersion: 'batch/v1',
      kind: 'Job',
      metadata: { name: `${o.name}-merge`, labels: step('merge') },
      spec: {
        backoffLimit: 0,
        template: pod('merge', ['merge', out, '--junit', `${out}junit.xml`, '--out', `${out}merged.json`], {}),
      },
    },
  };
}

/** YAML for JSON-shaped values: block mappings and sequences, strings double-quoted (JSON escapes are YAML's). */
export function toYaml(v: unknown, indent = ''): string {
  const scalar = (x: unknown) => (typeof x === 'string' ? JSON.stringify(x) : String(x));
  if (Array.isArray(v)) {
    return v.map((item) => {
      if (item && typeof item === 'object') return `${indent}- ${toYaml(item, `${indent}  `).slice(indent.length + 2)}`;
      return `${indent}- ${scalar(item)}\n`;
    }).join('');
  }
  if (v && typeof v === 'object') {
    return Object.entries(v).map(([k, x]) => {
      const key = /^[A-Za-z_][A-Za-z0-9_.\/-]*$/.test(k) ? k : JSON.stringify(k);
      if (x && typeof x === 'object' && (Array.isArray(x) ? x.length : Object.keys(x).length)) return `${indent}${key}:\n${toYaml(x, Array.isArray(x) ? indent : `${indent}  `)}`;
      if (x && typeof x === 'object') return `${indent}${key}: ${Array.isArray(x) ? '[]' : '{}'}\n`;
      return `${indent}${key}: ${scalar(x)}\n`;
    }).join('');
  }
  return `${indent}${scalar(v)}\n`;
}

export function k8sYaml(o: K8sOptions): string {
  const { shards, merge } = k8sManifests(o);
  return [
    `# ${o.spec} in ${o.shards} shards. Save this as FILE, then:`,
    `#   kubectl apply -f FILE -l scalpel.dev/step=shards`,
    `#   kubectl wait --for=condition=complete job/${o.name} --timeout=24h`,
    `#   kubectl apply -f FILE -l scalpel.dev/step=merge`,
    `#   kubectl wait --for=condition=complete job/${o.name}-merge; kubectl logs job/${o.name}-merge`,
    `# The merge exits as scalpel eval would (1 when a check fails, so the Job fails); ${o.mount}/out/${o.name}/ then`,
    `# holds the parts, junit.xml and merged.json.`,
    toYaml(shards).trimEnd(),
    '---',
    toYaml(merge).trimEnd(),
    '',
  ].join('\n');
}

export const k8sCommand: Command = {
  name: 'k8s',
  summary: 'Kubernetes manifests: a spec evaluated in N shards (Indexed Job) and merged',
  usage,
  async run(argv) {
    const { values, positionals } = parseArgs({
      args: argv,
      options: {
        shards: { type: 'string' },
        image: { type: 'string' },
        name: { type: 'string' },
        parallelism: { type: 'string' },
        retries: { type: 'string' },
        claim: { type: 'string' },
        mount: { type: 'string' },
        ep: { type: 'string' },
        'device-id': { type: 'string' },
        'gpu-resource': { type: 'string' },
        threads: { type: 'string' },
      },
      strict: true,
      allowPositionals: true,
    });
    if (positionals.length !== 1 || !positionals[0].endsWith('.scalpel')) throw new ScalpelError('k8s takes one spec file (SPEC.scalpel)');
    const spec = positionals[0];
    if (path.isAbsolute(spec)) throw new ScalpelError(`give the spec relative to the volume's root (the pods' working directory), not ${spec}`);
    const shards = positiveInt(values.shards, '--shards');
    if (!shards) throw new ScalpelError('k8s needs --shards N');
    if (!values.image) throw new ScalpelError('k8s needs --image IMAGE (a container image whose entrypoint is scalpel)');
    const executionProviders = values.ep === undefined ? undefined : parseExecutionProviders(values.ep);
    const deviceId = values['device-id'] === undefined ? undefined : Number(values['device-id']);
    if (deviceId !== undefined) checkDeviceId(executionProviders ?? ['cpu'], deviceId);
    const retries = values.retries === undefined ? 2 : Number(values.retries);
    if (!Number.isInteger(retries) || retries < 0) throw new ScalpelError(`--retries takes a whole number from 0, not "${values.retries}"`);
    const mount = values.mount ?? '/scalpel';
    if (!path.posix.isAbsolute(mount)) throw new ScalpelError(`--mount takes an absolute path, not "${mount}"`);
    process.stdout.write(
      k8sYaml({
        spec: spec.split(path.sep).join('/'),
        shards,
        image: values.image,
        name: dnsLabel(values.name ?? `scalpel-${path.basename(spec, '.scalpel')}`),
        parallelism: Math.min(shards, positiveInt(values.parallelism, '--parallelism') ?? shards),
        retries,
        claim: values.claim ?? 'scalpel-data',
        mount,
        executionProviders,
        deviceId,
        gpuResource: values['gpu-resource'] ?? 'nvidia.com/gpu',
        threads: positiveInt(values.threads, '--threads'),
      }),
    );
    return 0;
  },
};
