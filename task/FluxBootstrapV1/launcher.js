'use strict';
// The agent has no handler that runs Python on Linux, so this Node file is the task's entry point.
// It deliberately loads no library: azure-pipelines-task-lib would strip INPUT_*, ENDPOINT_AUTH_* and
// SECRET_* from the environment, and the Python side needs them. All it does is find Python 3.10+,
// run task_entry.py with the environment untouched and stdio inherited (the agent parses the child's
// ##vso lines directly), forward cancellation signals and pass the exit code on.

const childProcess = require('child_process');
const fs = require('fs');
const os = require('os');
const path = require('path');

const ENTRY = path.join(__dirname, 'task_entry.py');
const INDEX = readIndex();
const MINIMUM = minimumPython(INDEX);
const FIX = advice(INDEX, MINIMUM);
// Prints the version and the runtime key task_entry.py computes (cp312-linux-x86_64, cp313t-... when
// free-threaded). Written to run on any Python, 2.7 included, so that an old one is named, not a SyntaxError.
const PROBE = [
    'import os, sys',
    'm = os.uname()[4].lower()',
    'm = {"amd64": "x86_64", "x64": "x86_64", "arm64": "aarch64"}.get(m, m)',
    'i = getattr(sys, "implementation", None)',
    'n = "cp" if i is None or i.name == "cpython" else i.name',
    't = "t" if "t" in getattr(sys, "abiflags", "") else ""',
    'v = sys.version_info',
    'sys.stdout.write("%d.%d.%d %s%d%d%s-%s-%s\\n" % (v[0], v[1], v[2], n, v[0], v[1], t, sys.platform, m))',
].join('\n');

// python/runtimes.json, written by task/stage.py: which interpreters the task carries packages for
// (`runtimes`, keyed like cp312-linux-x86_64), the oldest of them (`minimum`) and their description
// (`supported`). null when it cannot be read: task_entry.py then reports the damage.
function readIndex() {
    try {
        return JSON.parse(fs.readFileSync(path.join(__dirname, 'python', 'runtimes.json'), 'utf8'));
    } catch (error) {
        return null;
    }
}

function minimumPython(index) {
    const match = /^(\d+)\.(\d+)$/.exec(String((index && index.minimum) || ''));
    return match ? [Number(match[1]), Number(match[2])] : [3, 10];
}

// The CPython versions the task carries packages for, oldest first (['3.10', ...]), from the runtime keys
// (cp312-linux-x86_64; free-threaded cp313t-... builds are not what UsePythonVersion@0 installs).
function pythonVersions(index) {
    const found = new Map();
    for (const key of Object.keys((index && index.runtimes) || {})) {
        const match = /^cp(\d)(\d+)-/.exec(key);
        if (match) found.set(`${match[1]}.${match[2]}`, [Number(match[1]), Number(match[2])]);
    }
    return [...found.entries()].sort((a, b) => a[1][0] - b[1][0] || a[1][1] - b[1][1]).map((entry) => entry[0]);
}

// What to do about a missing or old Python: the newest version the task carries packages for, and the range.
function advice(index, minimum) {
    const versions = pythonVersions(index);
    if (versions.length === 0) {
        return 'Add a UsePythonVersion@0 step before this task, or set the pythonPath input ' +
            `to a Python ${minimum.join('.')} or newer.`;
    }
    const newest = versions[versions.length - 1];
    const carried = versions.length === 1 ? newest : `${versions[0]} to ${newest}`;
    return `Add a UsePythonVersion@0 step (versionSpec: ${newest}) before this task, or set the pythonPath ` +
        `input to a CPython ${carried} (the versions the task carries packages for).`;
}

// The agent's escaping for the data part of a logging command (task-lib escapedata).
function escapeData(text) {
    return String(text).replace(/%/g, '%AZP25').replace(/\r/g, '%0D').replace(/\n/g, '%0A');
}

function failTask(message) {
    const data = escapeData(message);
    process.stdout.write(`##vso[task.logissue type=error]${data}\n##vso[task.complete result=Failed;]${data}\n`);
    process.exitCode = 1;
}

// pythonPath may name the interpreter or a folder holding one ($(pythonLocation) after UsePythonVersion@0).
function interpretersIn(folder) {
    const names = process.platform === 'win32' ? ['python.exe'] : ['bin/python3', 'bin/python', 'python3', 'python'];
    return names.map((name) => path.join(folder, name)).filter((file) => fs.existsSync(file));
}

function candidates() {
    const configured = (process.env.INPUT_PYTHONPATH || '').trim();
    if (!configured) {
        return { configured: false, list: ['python3', 'python'] };
    }
    let isFolder = false;
    try {
        isFolder = fs.statSync(configured).isDirectory();
    } catch (error) {
        isFolder = false;
    }
    const inFolder = isFolder ? interpretersIn(configured) : [];
    return { configured: true, list: isFolder && inFolder.length > 0 ? inFolder : [configured] };
}

function probe(python) {
    const result = childProcess.spawnSync(python, ['-I', '-c', PROBE], {
        encoding: 'utf8',
        env: process.env,
        stdio: ['ignore', 'pipe', 'pipe'],
        timeout: 30000,
        windowsHide: true,
    });
    if (result.error) {
        return { found: false, why: result.error.code === 'ENOENT' ? 'not found' : result.error.message };
    }
    const match = /^(\d+)\.(\d+)\.(\d+)(?:\s+(\S+))?/.exec((result.stdout || '').trim());
    if (result.status !== 0 || !match) {
        return { found: false, why: `did not run (exit code ${result.status})` };
    }
    const version = [Number(match[1]), Number(match[2])];
    const key = match[4] || '';
    const text = key ? `${python} is Python ${match[0].split(/\s+/)[0]} (${key})` : `${python} is Python ${match[0]}`;
    const recent = version[0] > MINIMUM[0] || (version[0] === MINIMUM[0] && version[1] >= MINIMUM[1]);
    if (!recent) {
        return { found: false, why: text };
    }
    // Too new, free-threaded or another platform: the task has no packages for it, so keep looking.
    if (INDEX && INDEX.runtimes && !Object.prototype.hasOwnProperty.call(INDEX.runtimes, key)) {
        return { found: false, why: `${text}, which the task carries no packages for` };
    }
    return { found: true };
}

function findPython() {
    const { configured, list } = candidates();
    const seen = [];
    for (const python of list) {
        const found = probe(python);
        if (found.found) {
            return python;
        }
        seen.push(found.why.startsWith(python) ? found.why : `${python}: ${found.why}`);
    }
    const where = configured ? 'the pythonPath input' : 'PATH (python3, python)';
    const kinds = INDEX && INDEX.supported ? ` (${INDEX.supported})` : '';
    failTask(`FluxBootstrap needs Python ${MINIMUM.join('.')} or newer${kinds} and found none in ${where} ` +
        `(${seen.join('; ')}). ${FIX}`);
    return null;
}

function run(python) {
    const child = childProcess.spawn(python, ['-u', '-I', ENTRY], { env: process.env, stdio: 'inherit' });
    const forward = (signal) => {
        if (child.exitCode === null && child.signalCode === null) {
            child.kill(signal);
        }
    };
    process.on('SIGINT', () => forward('SIGINT'));
    process.on('SIGTERM', () => forward('SIGTERM'));
    child.on('error', (error) => failTask(`FluxBootstrap could not start ${python}: ${error.message}. ${FIX}`));
    child.on('exit', (code, signal) => {
        if (signal) {
            process.exitCode = 128 + (os.constants.signals[signal] || 0);
        } else if (code !== null) {
            process.exitCode = code;
        }
    });
}

// The packages inside are built for Linux only: say so before looking for a Python on Windows or macOS.
function supportedText() {
    return (INDEX && INDEX.supported) || 'Linux agents';
}

function main() {
    if (process.platform !== 'linux') {
        failTask(`FluxBootstrap runs on ${supportedText()}; this agent runs ${os.type()} ${os.arch()}. ` +
            'Use a Linux agent (for example vmImage ubuntu-latest).');
        return;
    }
    const python = findPython();
    if (python) {
        run(python);
    }
}

// Run by the agent: start the task. Required (by the tests): hand out the escaping and the probe, to compare them
// with the Python side.
if (require.main === module) {
    main();
} else {
    module.exports = { escapeData, PROBE, advice };
}
