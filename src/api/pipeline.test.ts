// The package's API as a user sees it: everything is imported from the package name, not from src/.
import * as assert from 'node:assert/strict';
import { createReadStream, existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join, normalize } from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  defaultSampler,
  GeneratedImage,
  generateImages,
  loadDiffusionModel,
  loadPipeline,
  type Pipeline,
  SHIPPED_MODELS_DIR,
  shippedModels,
} from 'ladder-diffusion';
import * as tf from '../core/tf.js';
import { toUint8Images } from '../image/bytes.js';
import { pngPixels, testBackend } from '../test-utils/backend.js';

const STUDENT = 'mnist/ladd-dmd-4step';
let pipe: Pipeline;

before(async () => {
  await testBackend();
  pipe = await loadPipeline(STUDENT);
});
after(() => pipe.dispose());

describe('loadPipeline and generate', () => {
  it('finds the shipped models by name and reads their defaults from config and card', () => {
    assert.ok(shippedModels().includes(STUDENT), shippedModels().join(', '));
    assert.ok(shippedModels().includes('mnist/teacher'));
    assert.equal(pipe.info.kind, 'student');
    assert.equal(pipe.info.method, 'ladd-dmd');
    assert.deepEqual(pipe.info.steps, [4, 2, 1]);
    assert.equal(pipe.info.guidance, 1);
    assert.equal(pipe.info.sampler, 'few-step');
    assert.deepEqual([pipe.info.width, pipe.info.height, pipe.info.channels], [28, 28, 1]);
    assert.equal(pipe.info.classNames.length, 10);
    assert.equal(typeof pipe.info.card?.command, 'string');
    assert.equal(pipe.nfe(), 4);
    assert.equal(pipe.nfe({ steps: 2, guidance: 2 }), 4);
  });

  it('makes n images of each class, as the model generates them with its own defaults, and frees its tensors', async () => {
    const before = tf.memory().numTensors;
    const images = await pipe.generate({ classes: [7, 2], n: 3, seed: 5 });
    assert.equal(tf.memory().numTensors, before, 'generate left tensors behind');
    assert.deepEqual(
      images.map((im) => [im.label, im.className]),
      [7, 7, 7, 2, 2, 2].map((k) => [k, String(k)]),
    );
    for (const im of images) {
      assert.ok(im instanceof GeneratedImage);
      assert.deepEqual([im.width, im.height, im.channels, im.pixels.length], [28, 28, 1, 784]);
    }
    const model = await loadDiffusionModel(join(SHIPPED_MODELS_DIR, STUDENT));
    const expected = generateImages(model, {
      labels: Int32Array.from([7, 7, 7, 2, 2, 2]),
      steps: 4,
      cfg: 1,
      sampler: defaultSampler(model.config),
      seed: 5,
    });
    const bytes = await toUint8Images(expected);
    tf.dispose([expected, model.params, model.autoencoder.params] as never);
    images.forEach((im, i) => {
      assert.deepEqual(im.pixels, bytes.subarray(i * 784, (i + 1) * 784), `image ${i}`);
    });
    const ink = images[0]!.pixels.reduce((sum, v) => sum + v, 0) / 784;
    assert.ok(ink > 5 && ink < 120, `a digit is dark background with some ink, mean ${ink}`);
  });

  it('takes class names, and steps, guidance, sampler and seed that change the images', async () => {
    const [byName] = await pipe.generate({ classes: ['3'], seed: 1 });
    const [byIndex] = await pipe.generate({ classes: [3], seed: 1 });
    assert.deepEqual(byName!.pixels, byIndex!.pixels);
    for (const change of [{ seed: 2 }, { steps: 1 }, { guidance: 2 }, { sampler: 'euler' as const }]) {
      const [other] = await pipe.generate({ classes: [3], seed: 1, ...change });
      assert.notDeepEqual(other!.pixels, byIndex!.pixels, JSON.stringify(change));
    }
    const all = await pipe.generate();
    assert.deepEqual(
      all.map((im) => im.label),
      [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
    );
  });

  it('encodes PNGs in Node and RGBA for canvases', async () => {
    const [image] = await pipe.generate({ classes: [0] });
    const rgba = new Uint8Array(pngPixels(Buffer.from(image!.toPNG())));
    assert.deepEqual(rgba, new Uint8Array(image!.toRGBA()));
    assert.deepEqual(
      rgba.filter((_, i) => i % 4 === 0),
      image!.pixels,
    );
    assert.ok(
      rgba.every((v, i) => i % 4 !== 3 || v === 255),
      'opaque',
    );
    assert.throws(() => image!.toImageData(), /needs a browser.*toPNG/);
  });

  it('refuses requests it cannot honour, saying what would work', async () => {
    await assert.rejects(
      pipe.generate({ classes: [10] }),
      /class 10 does not exist: the model has classes 0 to 9/,
    );
    await assert.rejects(
      pipe.generate({ classes: ['seven'] }),
      /no class named "seven": the model's classes are 0, 1/,
    );
    await assert.rejects(pipe.generate({ classes: [] }), /classes is empty/);
    await assert.rejects(pipe.generate({ n: 0 }), /n must be an integer >= 1, got 0/);
    await assert.rejects(pipe.generate({ steps: 1.5 }), /steps must be an integer >= 1/);
    await assert.rejects(pipe.generate({ guidance: 101 }), /guidance must be between 0 and 100/);
    await assert.rejects(
      pipe.generate({ sampler: 'ddim' as never }),
      /unknown sampler "ddim": use one of euler/,
    );
    await assert.rejects(
      loadPipeline('mnist/no-such-model'),
      /no model folder "mnist\/no-such-model".*mnist\/teacher/,
    );
  });

  it('cannot generate once disposed', async () => {
    const other = await loadPipeline(join(SHIPPED_MODELS_DIR, 'mnist/ladd-1step'));
    const before = tf.memory().numTensors;
    other.dispose();
    assert.ok(tf.memory().numTensors < before, 'dispose freed the weights');
    await assert.rejects(other.generate(), /was disposed: load it again/);
  });
});

describe('loadPipeline from a URL', () => {
  let server: Server;
  let base: string;
  before(async () => {
    // A plain static server over the shipped models folder, as any web host would serve it.
    server = createServer((req, res) => {
      const path = normalize(
        join(SHIPPED_MODELS_DIR, decodeURIComponent(new URL(req.url!, 'http://x').pathname)),
      );
      if (!path.startsWith(SHIPPED_MODELS_DIR) || !existsSync(path) || path.endsWith('/')) {
        res.writeHead(404).end();
        return;
      }
      createReadStream(path).pipe(res.writeHead(200));
    });
    await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  });
  after(() => server.close());

  it('fetches the model, its autoencoder and card, and generates what the folder generates', async () => {
    const remote = await loadPipeline(`${base}${STUDENT}`);
    try {
      assert.equal(remote.info.method, 'ladd-dmd');
      assert.equal(typeof remote.info.card?.command, 'string');
      const [a] = await remote.generate({ classes: [4], seed: 3 });
      const [b] = await pipe.generate({ classes: [4], seed: 3 });
      assert.deepEqual(a!.pixels, b!.pixels);
    } finally {
      remote.dispose();
    }
    await assert.rejects(loadPipeline(`${base}mnist/missing`), /model config .*: not found/);
  });
});
