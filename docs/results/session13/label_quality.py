import numpy as np, sys
from maskpose.metrics import mpjpe, p_mpjpe, per_joint_mpjpe
from maskpose.skeleton import DEFAULT
gt = np.load('/tmp/s12/data/train/gt/joints3d.npy')
allids = np.load('/tmp/s12/data/train/samples.npz')['ids'].astype(str)
where = {s: i for i, s in enumerate(allids)}
names = list(DEFAULT.joints)
wr = [i for i,n in enumerate(names) if 'Wrist' in n]
el = [i for i,n in enumerate(names) if 'Elbow' in n]
for p in sys.argv[1:]:
    z = np.load(p)
    g = gt[[where[s] for s in z['ids'].astype(str)]]
    for k in ('before','pred'):
        pj = per_joint_mpjpe(z[k], g)
        print(p.split('/')[-2], p.split('/')[-1], k, len(g), 'mpjpe %.1f pmpjpe %.1f wrist %.1f elbow %.1f' % (mpjpe(z[k], g), p_mpjpe(z[k], g), pj[wr].mean(), pj[el].mean()))
