# Builds the tokenizers under Data/ (three written by hand, two trained by tokenizers' BpeTrainer) and records what
# Hugging Face tokenizers (0.23.2 when the committed files were made) does with them: writes <name>.json =
# {"tokenizer":..., "cases":[...]} into argv[1]; each was split into Data/<name>/tokenizer.json and cases.json.
import json,sys,os
from tokenizers import Tokenizer,models,trainers,pre_tokenizers as P,normalizers as N,decoders as D
from tokenizers.decoders import DecodeStream
bs=list(range(33,127))+list(range(161,173))+list(range(174,256));cs=bs[:];n=0
for b in range(256):
  if b not in bs:bs.append(b);cs.append(256+n);n+=1
B={b:chr(c) for b,c in zip(bs,cs)}
def tok(m,ad,norm,pre,post,dec):return dict(version="1.0",truncation=None,padding=None,added_tokens=[dict(id=i,content=c,single_word=sw,lstrip=l,rstrip=r,normalized=nz,special=s) for i,c,sw,l,r,nz,s in ad],normalizer=norm,pre_tokenizer=pre,post_processor=post,decoder=dec,model=m)
def bpe(v,mg,**k):return dict(type="BPE",dropout=None,unk_token=k.get('unk'),continuing_subword_prefix=None,end_of_word_suffix=None,fuse_unk=k.get('fuse',False),byte_fallback=k.get('bf',False),ignore_merges=k.get('im',False),vocab=v,merges=mg)
def tp(t,i):return dict(type="TemplateProcessing",single=[{"SpecialToken":{"id":t,"type_id":0}},{"Sequence":{"id":"A","type_id":0}}],pair=[{"Sequence":{"id":"A","type_id":0}},{"Sequence":{"id":"B","type_id":1}}],special_tokens={t:dict(id=t,ids=[i],tokens=[t])})
RX="(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
v={B[b]:b for b in range(256)};mg=[("h","e"),("l","l"),("he","ll"),("hell","o"),("Ġ","w"),("o","r"),("Ġw","or"),("a","ð")]
for a,b in mg:v[a+b]=len(v)
v["Ġworld"]=len(v)
A=[(265,"<|endoftext|>",0,0,0,0,1),(266,"<|im_start|>",0,0,0,0,1),(267,"<|im_end|>",0,0,0,0,1),(268,"<|begin_of_text|>",0,0,0,0,1),(269,"<tool>",0,0,0,1,0)]
A=[(i,c,bool(a),bool(b),bool(d),bool(e),bool(f)) for i,c,a,b,d,e,f in A]
H={"bytelevel_hand":tok(bpe(v,[list(x) for x in mg]),A,None,dict(type="Sequence",pretokenizers=[dict(type="Split",pattern=dict(Regex=RX),behavior="Isolated",invert=False),dict(type="ByteLevel",add_prefix_space=False,trim_offsets=False,use_regex=False)]),dict(type="Sequence",processors=[dict(type="ByteLevel",add_prefix_space=True,trim_offsets=False,use_regex=True),tp("<|begin_of_text|>",268)]),dict(type="ByteLevel",add_prefix_space=True,trim_offsets=True,use_regex=True))}
v={"<unk>":0,"<s>":1,"</s>":2}
for b in range(256):v["<0x%02X>"%b]=len(v)
for t in "▁ h e l o w r d".split():v[t]=len(v)
mg=["h e","l l","he ll","hell o","▁ hello","▁ w","o r","▁w or","l d","▁wor ld"]
for m in mg:v[m.replace(" ","")]=len(v)
S=[(0,"<unk>",0,0,0,0,1),(1,"<s>",0,0,0,0,1),(2,"</s>",0,0,0,0,1),(v.__len__(),"[X]",0,1,1,0,0),(len(v)+1,"ab",1,0,0,0,0),(len(v)+2,"foo bar",0,0,0,1,0)]
S=[(i,c,bool(a),bool(b),bool(d),bool(e),bool(f)) for i,c,a,b,d,e,f in S]
SPD=dict(type="Sequence",decoders=[dict(type="Replace",pattern=dict(String="▁"),content=" "),dict(type="ByteFallback"),dict(type="Fuse"),dict(type="Strip",content=" ",start=1,stop=0)])
H["sentencepiece_hand"]=tok(bpe(v,mg,unk="<unk>",fuse=True,bf=True),S,dict(type="Sequence",normalizers=[dict(type="Prepend",prepend="▁"),dict(type="Replace",pattern=dict(String=" "),content="▁")]),None,tp("<s>",1),SPD)
H["metaspace_hand"]=tok(bpe(v,mg,unk="<unk>",fuse=False,bf=False),S,None,dict(type="Metaspace",replacement="▁",prepend_scheme="first",split=True),tp("<s>",1),dict(type="Metaspace",replacement="▁",prepend_scheme="first",split=True))
T=["","  ","hello world","Hello World!","hello  world","  leading","trailing  ","a\nb\r\nc\n\n\td  \n x","I'm DON'T we'll they've 'S 'ſ","12345 3.14159 1,000,000","héllo café naïve e\u0301","日本語のテキスト","😀abc","abc😀 hi 😀👍🏽 ok","a𠀀b 𝟘𝟙𝟚𝟛 ⅧⅫ","<|im_start|>user\nhi<|im_end|><|endoftext|>","<s>hello</s>"," <s> hello","hello [X]  world x[X]y","ab cab ab","foo bar baz foo  bar","▁hello ▁","<0x41><unk>","\u00a0nbsp\u3000ideo\u2028","def f(x):\n    return x**2  # comment","<tool>call<tool>","hello world hello world hello world","Ĭ\x00\x01 ctrl","Grüße aus Köln, façade. Ελληνικά и русский. 中文文本和日本語。 한국어"]
def st(t,b):
 try:ds=DecodeStream(skip_special_tokens=True);return [ds.step(t,i) or "" for i in b]
 except Exception as e:return repr(e)
def run(k,j):
 try:
     t=Tokenizer.from_str(json.dumps(j));C=[]
     for x in T:
       a=t.encode(x,add_special_tokens=False).ids;b=t.encode(x,add_special_tokens=True).ids
       C.append(dict(text=x,ids=a,ids_with_special=b,decoded=t.decode(a,skip_special_tokens=False),decoded_skip=t.decode(b,skip_special_tokens=True),stream=st(t,b)))
     json.dump(dict(tokenizer=j,cases=C),open(os.path.join(sys.argv[1],k+".json"),"w"),ensure_ascii=False,indent=1)
 except Exception:import traceback;traceback.print_exc()
for k in list(H):run(k,H[k])
import traceback
try:
 import this,collections,json as J,re as R
 cor=["".join(this.d.get(c,c) for c in this.s)]*3+[m.__doc__ for m in (collections,J,R,os)]+["Grüße aus Köln, façade, naïve café. Ελληνικά και русский текст. 中文文本和日本語。 한국어 😀👍 2024-11-28 3.14"]*5
 def tr(t,n,sp):t.train_from_iterator(cor,trainers.BpeTrainer(vocab_size=n,special_tokens=sp,limit_alphabet=70,show_progress=False,**({"initial_alphabet":P.ByteLevel.alphabet()} if t.pre_tokenizer else {})));return json.loads(t.to_str())
 t=Tokenizer(models.BPE(ignore_merges=True));t.pre_tokenizer=P.ByteLevel(add_prefix_space=False);t.decoder=D.ByteLevel()
 j=tr(t,700,["<|endoftext|>","<|im_start|>","<|im_end|>"]);j["post_processor"]=dict(type="ByteLevel",add_prefix_space=True,trim_offsets=False,use_regex=True);H["bytelevel_trained"]=j
 t=Tokenizer(models.BPE(unk_token="<unk>",byte_fallback=True,fuse_unk=True));t.normalizer=N.Sequence([N.Prepend("▁"),N.Replace(" ","▁")]);t.decoder=D.Sequence([D.Replace("▁"," "),D.ByteFallback(),D.Fuse(),D.Strip(" ",1,0)])
 j=tr(t,700,["<unk>","<s>","</s>"]+["<0x%02X>"%b for b in range(256)]);j["added_tokens"]=[a for a in j["added_tokens"] if not a["content"].startswith("<0x")];j["post_processor"]=tp("<s>",1);H["sentencepiece_trained"]=j
except Exception:traceback.print_exc()
for k in H:
 if k.endswith("trained"):run(k,H[k])
